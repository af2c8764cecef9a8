"""memberships count from a log position: late joiners replay nothing from before they joined

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:10:00

`memberships.since_xid` and `since_event_id` are the event-log position (chatr.infra.event_log)
from which a membership counts. Existing memberships get (0, 0), every event of their
conversation, which is what they were shown until now.

Columns are added without batch mode, so SQLite keeps the search triggers of 0004
(`memberships` has none either way).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for name in ("since_xid", "since_event_id"):
        op.add_column(
            "memberships",
            sa.Column(name, sa.BigInteger(), server_default="0", nullable=False),
        )


def downgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("since_event_id")
        batch.drop_column("since_xid")
