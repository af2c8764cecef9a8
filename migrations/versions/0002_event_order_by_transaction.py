"""events ordered by (xid, id): no single row lock on the write path

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 15:30:00

Events get the writing transaction's id (`xid`) and, on PostgreSQL, ids from a sequence
instead of the locked `event_stream` counter (which SQLite keeps using). Existing events get
xid 0, so their order, (0, id), is the old id order and old cursors keep their meaning. See
chatr.models.event and docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("xid", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("events") as batch:
        # Every writer sets it; a statement that forgot would fail rather than log out of order.
        batch.alter_column("xid", server_default=None)
    op.drop_index("ix_events_conversation_id_id", table_name="events")
    op.create_index("ix_events_xid_id", "events", ["xid", "id"])
    op.create_index("ix_events_conversation_id_xid_id", "events", ["conversation_id", "xid", "id"])
    if postgres:
        op.execute("CREATE SEQUENCE events_id_seq AS bigint OWNED BY events.id")
        # Past every id handed out, whether or not its event still exists.
        op.execute(
            "SELECT setval('events_id_seq', GREATEST(1, "
            "(SELECT position FROM event_stream WHERE id = 1), "
            "(SELECT coalesce(max(id), 0) FROM events)))"
        )
        op.execute("ALTER TABLE events ALTER COLUMN id SET DEFAULT nextval('events_id_seq')")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # The counter takes over past every id the sequence handed out.
        op.execute(
            "UPDATE event_stream SET position = GREATEST(position, "
            "(SELECT coalesce(max(id), 0) FROM events)) WHERE id = 1"
        )
        op.execute("ALTER TABLE events ALTER COLUMN id DROP DEFAULT")
        op.execute("DROP SEQUENCE events_id_seq")
    op.drop_index("ix_events_conversation_id_xid_id", table_name="events")
    op.drop_index("ix_events_xid_id", table_name="events")
    op.create_index("ix_events_conversation_id_id", "events", ["conversation_id", "id"])
    with op.batch_alter_table("events") as batch:
        batch.drop_column("xid")
