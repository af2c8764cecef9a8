"""Moving refresh-token rotations back in time, so a test can replay a spent token "later"."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from chatr.models import RefreshToken
from chatr.models.base import utcnow
from chatr.runtime import Runtime


async def outlive_refresh_grace(rt: Runtime) -> None:
    """Date every rotation back past the reuse grace window: a spent token presented after
    this is a replay of a stolen copy, not a second tab that raced the first."""
    long_ago = utcnow() - timedelta(seconds=rt.settings.refresh_reuse_grace_seconds + 60)
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(RefreshToken).where(RefreshToken.used_at.is_not(None)).values(used_at=long_ago)
        )
