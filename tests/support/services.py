"""Real backing services for the suite: fail loudly (never skip) when they are missing."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable
from typing import cast

import asyncpg
import pytest
import redis.asyncio as aioredis

POSTGRES_ADMIN_URL = os.environ.get(
    "CHATR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CHATR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def require_postgres() -> None:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(
            f"PostgreSQL is required at {POSTGRES_ADMIN_URL} and is not reachable ({error}). "
            "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )
    await connection.close()


async def require_redis() -> None:
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        # redis-py types its commands for both clients (`Awaitable[bool] | bool`)
        await cast(Awaitable[bool], client.ping())
    except (OSError, aioredis.RedisError) as error:
        pytest.fail(
            f"Redis is required at {REDIS_URL} and is not reachable ({error}). Start it: "
            'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
            pytrace=False,
        )
    finally:
        await client.aclose()


def worker() -> str:
    """This pytest process's name under pytest-xdist ("gw0", "gw1"...), "main" without it.

    Parallel workers share PostgreSQL and Redis: whatever a test session makes there carries
    this name, so two workers never share a database and a leftover names its run's worker.
    """
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


async def create_database() -> str:
    """A fresh, uniquely named database (one per worker and session); returns its URL."""
    name = f"chatr_test_{worker()}_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
