"""rich messages: unsend tombstones, pins, stars, mentions, forwards

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 20:40:00

Messages get who unsent them (`deleted_by_id`), who pinned them and when, and a `forwarded`
mark; mentions and stars get their own tables. Revisions, reactions and "delete for me"
(`message_hidden`) already had theirs; hidden messages get an index by user for unread counts.

On SQLite, adding the foreign keys makes alembic's batch mode recreate `messages`, which drops
the search triggers of 0004; they are created again from 0004's own definition.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import chatr.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_search_triggers() -> Callable[[], None]:
    """0004's `create_sqlite_search_triggers` (a revision file is no importable module)."""
    path = Path(__file__).with_name("0004_search_and_inbox.py")
    spec = importlib.util.spec_from_file_location("chatr_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    create: Callable[[], None] = module.create_sqlite_search_triggers
    return create


def upgrade() -> None:
    op.create_table(
        "message_mentions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_message_mentions_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_mentions_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_message_mentions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_mentions")),
    )
    with op.batch_alter_table("message_mentions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_mentions_user_id_conversation_id_seq",
            ["user_id", "conversation_id", "seq"],
            unique=False,
        )
        batch_op.create_index(
            "uq_message_mentions_message_id_user_id", ["message_id", "user_id"], unique=True
        )

    op.create_table(
        "message_stars",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", chatr.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_stars_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_message_stars_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_stars")),
    )
    with op.batch_alter_table("message_stars", schema=None) as batch_op:
        batch_op.create_index("ix_message_stars_message_id", ["message_id"], unique=False)
        batch_op.create_index(
            "uq_message_stars_user_id_message_id", ["user_id", "message_id"], unique=True
        )

    with op.batch_alter_table("message_hidden", schema=None) as batch_op:
        batch_op.create_index("ix_message_hidden_user_id", ["user_id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("forwarded", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "deleted_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("pinned_at", chatr.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "pinned_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_index(
            "ix_messages_conversation_id_pinned_at", ["conversation_id", "pinned_at"], unique=False
        )
        batch_op.create_index("ix_messages_reply_to_id", ["reply_to_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_deleted_by_id_users"),
            "users",
            ["deleted_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_pinned_by_id_users"),
            "users",
            ["pinned_by_id"],
            ["id"],
            ondelete="SET NULL",
        )

    if op.get_bind().dialect.name == "sqlite":
        _sqlite_search_triggers()()


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_messages_pinned_by_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_messages_deleted_by_id_users"), type_="foreignkey")
        batch_op.drop_index("ix_messages_reply_to_id")
        batch_op.drop_index("ix_messages_conversation_id_pinned_at")
        batch_op.drop_column("pinned_by_id")
        batch_op.drop_column("pinned_at")
        batch_op.drop_column("deleted_by_id")
        batch_op.drop_column("forwarded")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_search_triggers()()

    with op.batch_alter_table("message_hidden", schema=None) as batch_op:
        batch_op.drop_index("ix_message_hidden_user_id")

    with op.batch_alter_table("message_stars", schema=None) as batch_op:
        batch_op.drop_index("uq_message_stars_user_id_message_id")
        batch_op.drop_index("ix_message_stars_message_id")

    op.drop_table("message_stars")
    with op.batch_alter_table("message_mentions", schema=None) as batch_op:
        batch_op.drop_index("uq_message_mentions_message_id_user_id")
        batch_op.drop_index("ix_message_mentions_user_id_conversation_id_seq")

    op.drop_table("message_mentions")
