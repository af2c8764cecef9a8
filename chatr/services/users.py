"""Accounts: registration and lookups."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatr import security
from chatr.errors import Conflict
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import validation


async def list_by_ids(session: AsyncSession, *, user_ids: Sequence[int]) -> list[User]:
    if not user_ids:
        return []
    result = await session.scalars(select(User).where(User.id.in_(list(user_ids))))
    return list(result)


async def find_by_login(session: AsyncSession, *, login: str) -> User | None:
    """A username or an email address, case-insensitively."""
    key = login.strip().lower()
    column = User.email_key if "@" in key else User.username_key
    return await session.scalar(select(User).where(column == key))


async def create(
    rt: Runtime,
    *,
    username: str,
    password: str,
    email: str | None = None,
    display_name: str | None = None,
) -> User:
    username = validation.username(username)
    password = validation.password(password)
    email = validation.email(email) if email else None
    user = User(
        username=username,
        username_key=username.lower(),
        email=email,
        email_key=email.lower() if email else None,
        password_hash=security.hash_password(password),
        display_name=validation.display_name(display_name, username),
        privacy={},
    )
    async with rt.db.session() as session, session.begin():
        taken = await session.scalar(select(User.id).where(User.username_key == user.username_key))
        if taken is not None:
            raise Conflict("That username is taken.", field="username")
        if user.email_key and await session.scalar(
            select(User.id).where(User.email_key == user.email_key)
        ):
            raise Conflict("That email address is already registered.", field="email")
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as error:  # a concurrent registration won the race
            raise Conflict("That username or email is taken.", field="username") from error
    return user
