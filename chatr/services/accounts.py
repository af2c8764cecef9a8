"""Loading an account a service acts on; NOT_FOUND if it is gone (deleted meanwhile).

A module of its own so that services `users` itself depends on (verification, second
factors) can share it without an import cycle.
"""

from __future__ import annotations

from chatr.errors import NotFound
from chatr.models import User
from chatr.runtime import Runtime


async def require(rt: Runtime, user_id: int) -> User:
    async with rt.db.reader() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user
