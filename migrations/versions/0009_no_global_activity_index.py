"""conversations lose their index on last_activity_at: every send's seq UPDATE becomes HOT

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:40:00

Every send updates its conversation's row (`last_seq`, `last_activity_at`). While
`last_activity_at` was indexed, PostgreSQL could not update the row in place (a HOT update):
each send wrote a new entry into every index of `conversations` (three of them). Nothing read
through that index: the inbox and the message requests are lists of one viewer's
conversations, which the planner finds from `ix_memberships_user_id` and sorts; an index of
all conversations by activity would only serve a scan of everybody's conversations, filtered
down to one viewer's, which is the wrong plan for them. Measured on the send statement alone
(4 connections, six paired rounds): its PostgreSQL CPU fell by 6% in each pair, and every
seq update became HOT.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_conversations_last_activity_at", table_name="conversations")


def downgrade() -> None:
    op.create_index(
        "ix_conversations_last_activity_at", "conversations", ["last_activity_at"], unique=False
    )
