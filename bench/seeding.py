"""Seeding the benches' accounts, groups and sessions through chatr's own services.

One place for what bench/fanout.py and bench/throughput.py both need: a runtime with the
servers' settings, accounts created with one shared password hash, sessions started for them.
Each bench then shapes its own conversations (one big group, or one group per sender).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TYPE_CHECKING, TypeVar
from unittest import mock

if TYPE_CHECKING:
    from chatr.models import User
    from chatr.runtime import Runtime

T = TypeVar("T")

PASSWORD = "Bench-pass1"
#: Seeding runs this many service calls at once (the runtime's pool is shared with them).
SEED_CONCURRENCY = 8


async def bounded(aws: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Await all of `aws`, at most `limit` at a time; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(aw: Awaitable[T]) -> T:
        async with semaphore:
            return await aw

    return list(await asyncio.gather(*(one(aw) for aw in aws)))


@contextlib.asynccontextmanager
async def seeding_runtime(env: dict[str, str]) -> AsyncIterator[Runtime]:
    """chatr's runtime with the servers' settings (secret, token lifetime, prefix), per-IP
    registration limits off for it alone (the servers keep them on), and one argon2 hash
    (~0.1 s each) serving every bench account."""
    from chatr import security
    from chatr.app import create_app
    from chatr.settings import load_settings

    app = create_app(load_settings(env).with_overrides(rate_limits=False))
    password_hash = await security.hash_password(PASSWORD)

    async def reuse_hash(_password: str) -> str:
        return password_hash

    async with app.router.lifespan_context(app):
        with mock.patch.object(security, "hash_password", reuse_hash):
            yield app.state.runtime


async def create_users(
    rt: Runtime, count: int, *, username: str, display_name: str | None = None
) -> list[User]:
    """`count` accounts named `username.format(index)` (and `display_name` likewise)."""
    from chatr.services import users

    return await bounded(
        (
            users.create(
                rt,
                username=username.format(index),
                password=PASSWORD,
                client_ip="127.0.0.1",
                display_name=None if display_name is None else display_name.format(index),
            )
            for index in range(count)
        ),
        SEED_CONCURRENCY,
    )


async def access_tokens(rt: Runtime, accounts: list[User], *, device_label: str) -> list[str]:
    """One session per account; their access tokens, in the same order."""
    from chatr.services import auth

    issued = await bounded(
        (auth.start_session(rt, user=user, device_label=device_label) for user in accounts),
        SEED_CONCURRENCY,
    )
    return [i.access_token for i in issued]
