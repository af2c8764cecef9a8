"""message search, per-member inbox settings, events addressed to one user, durable deletion

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-04 19:10:00

Search (chatr.services.message_search):
- PostgreSQL: `messages.search_vector`, a stored generated tsvector ('simple' configuration:
  no stemming, the same for every language, like SQLite's tokenizer) of the body of messages
  that may be found (not unsent, not SYSTEM, not ENCRYPTED; NULL otherwise), with a GIN index.
  Generated, so no writer can forget it: an edit re-computes it, an unsend empties it.
- SQLite: `message_search`, an FTS5 table over `messages.body` (external content: the text is
  not stored twice), kept in sync by triggers on insert, update and delete for the same rows.
  Caveat: alembic's batch mode recreates a table it alters on SQLite, which drops the
  triggers; a later migration that batch-alters `messages` must create them again
  (`create_sqlite_search_triggers`). tests/project checks they exist at head.

Neither is part of the models (`chatr.models.SEARCH_SCHEMA_NAMES`; env.py leaves them out of
`alembic check`): the ORM never reads or writes them.

Inbox: memberships get `muted_until`, `archived_at`, `pinned_at`; conversations `deleted_at`
(deleted for everyone: the row stays as the target of the deletion's events). Events get
`audience_id`: an event for one user only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatr.models.base

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _searchable(row: str = "") -> str:
    """Which messages search may find (the same rule on both dialects); `row`: new. / old."""
    return (
        f"{row}deleted_at IS NULL AND {row}kind NOT IN ('SYSTEM', 'ENCRYPTED') "
        f"AND {row}body IS NOT NULL"
    )


def create_sqlite_search_triggers() -> None:
    """The FTS5 index follows every insert, update and delete of a message (SQLite)."""
    op.execute(
        "CREATE TRIGGER message_search_insert AFTER INSERT ON messages "
        f"WHEN {_searchable('new.')} BEGIN "
        "INSERT INTO message_search(rowid, body) VALUES (new.id, new.body); END"
    )
    op.execute(
        "CREATE TRIGGER message_search_delete AFTER DELETE ON messages "
        f"WHEN {_searchable('old.')} BEGIN "
        "INSERT INTO message_search(message_search, rowid, body) "
        "VALUES ('delete', old.id, old.body); END"
    )
    # One trigger, two statements in this order: two AFTER UPDATE triggers would run in an
    # order SQLite does not promise, and indexing the new text before removing the old one's
    # corrupts an external-content index.
    op.execute(
        "CREATE TRIGGER message_search_update AFTER UPDATE OF body, kind, deleted_at "
        "ON messages BEGIN "
        "INSERT INTO message_search(message_search, rowid, body) "
        f"SELECT 'delete', old.id, old.body WHERE {_searchable('old.')}; "
        "INSERT INTO message_search(rowid, body) "
        f"SELECT new.id, new.body WHERE {_searchable('new.')}; END"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    user_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("muted_until", chatr.models.base.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("archived_at", chatr.models.base.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("pinned_at", chatr.models.base.UTCDateTime(), nullable=True))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("deleted_at", chatr.models.base.UTCDateTime(), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("audience_id", user_id, nullable=True))
        batch.create_foreign_key(
            batch.f("fk_events_audience_id_users"),
            "users",
            ["audience_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_index("ix_events_audience_id_xid_id", "events", ["audience_id", "xid", "id"])
    if postgres:
        op.execute(
            "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            f"(CASE WHEN {_searchable()} THEN to_tsvector('simple'::regconfig, body) END) STORED"
        )
        op.execute("CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE message_search USING fts5("
            "body, content='messages', content_rowid='id', tokenize='unicode61')"
        )
        create_sqlite_search_triggers()
        op.execute(
            "INSERT INTO message_search(rowid, body) "
            f"SELECT id, body FROM messages WHERE {_searchable()}"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP INDEX ix_messages_search_vector")
        op.execute("ALTER TABLE messages DROP COLUMN search_vector")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER message_search_{trigger}")
        op.execute("DROP TABLE message_search")
    op.drop_index("ix_events_audience_id_xid_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint(batch.f("fk_events_audience_id_users"), type_="foreignkey")
        batch.drop_column("audience_id")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("pinned_at")
        batch.drop_column("archived_at")
        batch.drop_column("muted_until")
