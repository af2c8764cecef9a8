"""media: uploads' kind, purpose and expiry; voice notes played

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 05:10:00

`attachments` (made by 0001, unused until now) becomes the record of every upload: its kind
(IMAGE, AUDIO, VIDEO, FILE), what it is for (a message, an avatar, a cover) and when it is
deleted if nothing uses it. `message_plays` records who played which voice note.

Columns are added without batch mode, so SQLite keeps the search triggers of 0004 (a batch
alter recreates the table it alters; `attachments` has none, but nothing here needs one).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatr.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "attachments",
        sa.Column(
            "kind",
            sa.Enum(
                "IMAGE",
                "AUDIO",
                "VIDEO",
                "FILE",
                name="attachmentkind",
                native_enum=False,
                length=16,
            ),
            server_default="FILE",
            nullable=False,
        ),
    )
    op.add_column(
        "attachments",
        sa.Column(
            "purpose",
            sa.Enum(
                "MESSAGE", "AVATAR", "COVER", name="uploadpurpose", native_enum=False, length=16
            ),
            server_default="MESSAGE",
            nullable=False,
        ),
    )
    op.add_column(
        "attachments",
        sa.Column("expires_at", chatr.models.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_attachments_expires_at", "attachments", ["expires_at"], unique=False)
    op.create_index("ix_attachments_owner_id", "attachments", ["owner_id"], unique=False)

    op.create_table(
        "message_plays",
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
        sa.Column("played_at", chatr.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_plays_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_message_plays_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_plays")),
    )
    op.create_index(
        "uq_message_plays_message_id_user_id",
        "message_plays",
        ["message_id", "user_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_message_plays_message_id_user_id", table_name="message_plays")
    op.drop_table("message_plays")
    op.drop_index("ix_attachments_owner_id", table_name="attachments")
    op.drop_index("ix_attachments_expires_at", table_name="attachments")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("purpose")
        batch_op.drop_column("kind")
