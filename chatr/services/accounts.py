"""Loading an account a service acts on or for, when it may be gone (deleted meanwhile).

A module of its own so that services `users` itself depends on (verification, second
factors) can share it without an import cycle.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import NotFound, Unauthenticated
from chatr.models import User
from chatr.runtime import Runtime


async def require(rt: Runtime, user_id: int) -> User:
    async with rt.db.reader() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def viewer_gone() -> Unauthenticated:
    """The error for an authenticated viewer whose account no longer exists.

    A token is trusted for a few seconds without asking the database (see
    chatr.services.session_cache), so an instance that missed the revocation of a deleted
    account still lets it through. Whichever service then finds the account gone answers
    this, as the session check would have: the client must sign in again.
    """
    return Unauthenticated("This account no longer exists; log in again.")


async def require_viewer(session: AsyncSession, *, viewer_id: int) -> User:
    """The viewer's own account; UNAUTHENTICATED (`viewer_gone`) when it was deleted."""
    user = await session.get(User, viewer_id)
    if user is None:
        raise viewer_gone()
    return user
