"""Loading the account a viewer acts as, which may be gone (deleted meanwhile).

A token is trusted for a few seconds without asking the database (see
chatr.infra.session_cache), so an instance that missed the revocation of a deleted account
still lets its token through. Whichever service then finds the account gone answers
UNAUTHENTICATED, as the session check would have: the client must sign in again. Never an
assertion (INTERNAL_SERVER_ERROR) and never NOT_FOUND (which would blame the request).

A module of its own so that services `users` itself depends on (verification, second
factors) can share it without an import cycle.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import Unauthenticated
from chatr.models import User
from chatr.runtime import Runtime


def viewer_gone() -> Unauthenticated:
    """The error for an authenticated viewer whose account no longer exists."""
    return Unauthenticated("This account no longer exists; log in again.")


async def require_viewer(session: AsyncSession, *, viewer_id: int) -> User:
    """The viewer's own account, in the caller's session; UNAUTHENTICATED when it is gone."""
    user = await session.get(User, viewer_id)
    if user is None:
        raise viewer_gone()
    return user


async def require(rt: Runtime, viewer_id: int) -> User:
    """`require_viewer` in a session of its own."""
    async with rt.db.reader() as session:
        return await require_viewer(session, viewer_id=viewer_id)
