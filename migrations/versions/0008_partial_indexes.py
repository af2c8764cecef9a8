"""indexes that most rows have nothing for become partial: a send writes three index entries less

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:30:00

`ix_messages_conversation_id_pinned_at`, `ix_messages_reply_to_id` and
`ix_events_audience_id_xid_id` indexed every row, although only pinned messages, replies and
events addressed to one person are ever looked up through them. Each now covers only the rows
whose column is set (`WHERE … IS NOT NULL`), so a plain message and its event no longer add an
entry to any of them: less work and WAL for PostgreSQL on every send. The queries that use
them all compare the column with a value (or ask for `IS NOT NULL`), which lets the planner
use a partial index. Both dialects support partial indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, columns, the column only rows that have it are indexed by)
PARTIAL = (
    (
        "ix_messages_conversation_id_pinned_at",
        "messages",
        ["conversation_id", "pinned_at"],
        "pinned_at",
    ),
    ("ix_messages_reply_to_id", "messages", ["reply_to_id"], "reply_to_id"),
    ("ix_events_audience_id_xid_id", "events", ["audience_id", "xid", "id"], "audience_id"),
)


def upgrade() -> None:
    for name, table, columns, column in PARTIAL:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, table, columns, _column in PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
