"""Engine and session factory, built once per app in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatr.settings import Settings


def insert_ignoring_conflicts(dialect_name: str, model: type[Any]) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` for either dialect (both spell it the same way)."""
    if dialect_name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (subscriptions replaying) run while a sender writes; foreign keys are
    # off by default in SQLite; busy_timeout makes concurrent writers wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings, *, autocommit: bool = False) -> AsyncEngine:
    """The engine for `settings`; `autocommit` gives one whose connections never BEGIN."""
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, **options)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_pragmas)
        return engine
    # No pool_pre_ping: with asyncpg it costs three round trips per checkout (it was a third
    # of a send's database time). A connection broken by a server restart fails one statement,
    # SQLAlchemy then invalidates the pool, and recycling bounds the age of idle ones.
    return create_async_engine(
        settings.database_url,
        # Two pools per process (transactional and autocommit), each at most 2 x pool size:
        # at the default 10 that is 40 connections per process.
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_recycle=1800,
        **options,
    )


class Database:
    """Owns the engine; hands out short-lived sessions.

    Sessions are opened per unit of work, never per WebSocket connection: a connection can
    live for hours and must not pin a pooled connection or an identity map that goes stale.
    """

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads and single-statement writes run in autocommit: no BEGIN/COMMIT round trips.
        # A pool of its own: switching a shared connection's isolation level on every
        # checkout and back on every return was measurable on the subscriber's hot path.
        self.autocommit_engine = create_engine(settings, autocommit=True)
        self._reader = async_sessionmaker(self.autocommit_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """For units of work that only read; each statement sees the latest commits."""
        async with self._reader() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.autocommit_engine.dispose()
