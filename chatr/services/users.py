"""Accounts: registration and lookups."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatr import security
from chatr.errors import BadUserInput, Conflict, NotFound
from chatr.infra import rate_limits
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import email_verification, phone_verification, profiles, validation


async def get(session: AsyncSession, *, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def list_by_ids(session: AsyncSession, *, user_ids: Sequence[int]) -> list[User]:
    if not user_ids:
        return []
    result = await session.scalars(select(User).where(User.id.in_(list(user_ids))))
    return list(result)


async def find_by_login(session: AsyncSession, *, login: str) -> User | None:
    """A username or an email address, case-insensitively. Text no account can have (see
    `validation.storable`) matches nobody, like any unknown login."""
    key = login.strip().lower()
    if not validation.storable(key):
        return None
    column = User.email_key if "@" in key else User.username_key
    return await session.scalar(select(User).where(column == key))


async def create(
    rt: Runtime,
    *,
    username: str,
    password: str,
    client_ip: str,
    email: str | None = None,
    phone: str | None = None,
    display_name: str | None = None,
    profile: profiles.ProfileChanges | None = None,
    staff: bool = False,
) -> User:
    """A new account; `profile` may set names and gender (display name has its own rule).

    Display names that read as chatr's own staff ("Support Team") are refused unless the
    account is being made for staff (`staff`: the create-admin command)."""
    await rt.limits.hit(rate_limits.REGISTER, client_ip)
    profile_values = profiles.validated(profile) if profile is not None else {}
    username = validation.username(username)
    password = validation.password(password)
    email = validation.email(email) if email else None
    phone = validation.phone(phone) if phone else None
    password_hash = await security.hash_password(password)
    user = User(
        username=username,
        username_key=username.lower(),
        email=email,
        email_key=email.lower() if email else None,
        phone=phone,
        password_hash=password_hash,
        display_name=_display_name(display_name, username, staff=staff),
        privacy={},
        **profile_values,
    )
    async with rt.db.session() as session, session.begin():
        taken = await session.scalar(select(User.id).where(User.username_key == user.username_key))
        if taken is not None:
            raise Conflict("That username is taken.", field="username")
        if user.email_key and await session.scalar(
            select(User.id).where(User.email_key == user.email_key)
        ):
            raise Conflict("That email address is already registered.", field="email")
        if user.phone and await session.scalar(select(User.id).where(User.phone == user.phone)):
            raise Conflict("That phone number is already registered.", field="phone")
        session.add(user)
        try:
            await session.flush()
        except IntegrityError as error:  # a concurrent registration won the race
            raise Conflict("That username, email or phone is taken.", field="username") from error
    if user.email:
        await email_verification.send_code(rt, user_id=user.id, email=user.email)
    if user.phone:
        await phone_verification.send_code(rt, user_id=user.id, phone=user.phone)
    return user


def _display_name(value: str | None, username: str, *, staff: bool) -> str:
    name = validation.display_name(value, username)
    return name if staff else validation.not_reserved(name)


@dataclass(frozen=True)
class UsernameAvailability:
    available: bool
    #: Why not, when it is not: "INVALID" (breaks the rules) or "TAKEN".
    reason: str | None
    suggestions: list[str]


SUGGESTION_COUNT = 3


def _candidates(base: str) -> list[str]:
    """Free-form variants of `base` that still obey the username rules (3-20 [A-Za-z0-9_])."""
    stem = re.sub(r"[^A-Za-z0-9_]", "", base)[:15] or "user"
    stem = stem if len(stem) >= 3 else f"{stem}_user"[:15]
    numbered = [f"{stem}{secrets.randbelow(9000) + 1000}" for _ in range(6)]
    return [f"{stem}_", f"the_{stem}"[:20], *numbered, f"{stem}_{secrets.randbelow(100)}"]


async def username_availability(rt: Runtime, *, username: str) -> UsernameAvailability:
    """Is `username` free (case-insensitively)? If not, up to three free suggestions."""
    try:
        wanted = validation.username(username)
    except BadUserInput:
        wanted = None
    candidates = [
        c for c in _candidates(username.strip()) if validation.USERNAME_PATTERN.fullmatch(c)
    ]
    keys = [c.lower() for c in candidates] + ([wanted.lower()] if wanted else [])
    async with rt.db.reader() as session:
        taken = set(
            await session.scalars(select(User.username_key).where(User.username_key.in_(keys)))
        )
    if wanted is not None and wanted.lower() not in taken:
        return UsernameAvailability(True, None, [])
    free = list(dict.fromkeys(c for c in candidates if c.lower() not in taken))
    return UsernameAvailability(
        False, "INVALID" if wanted is None else "TAKEN", free[:SUGGESTION_COUNT]
    )


async def profile(rt: Runtime, *, user_id: int | None = None, username: str | None = None) -> User:
    """Someone's account to show as a profile, by id or username; NOT_FOUND if there is none.

    Every signed-in user may look anyone up: what the profile reveals is decided per field by
    `chatr.services.privacy`, so the lookup itself leaks nothing a search would not.
    """
    async with rt.db.reader() as session:
        key = (username or "").strip().lower()
        if user_id is not None:
            user = await session.get(User, user_id)
        elif validation.storable(key):
            user = await session.scalar(select(User).where(User.username_key == key))
        else:
            user = None  # no username can contain it
    if user is None or user.suspended_at is not None:
        raise NotFound("No such user.", field="id" if user_id is not None else "username")
    return user
