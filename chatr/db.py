"""Engine and session factory, built once per app in the lifespan; what a database outage is.

An outage must look like an outage, not like a bug: every wait on PostgreSQL is bounded
(connect, each command, a pool checkout), so a request answers within a few seconds even when
the server is hung, and `is_unavailable` tells the failures a client should simply retry
(SERVICE_UNAVAILABLE) from the ones that are bugs (INTERNAL_SERVER_ERROR).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.base import Executable

from chatr.fair_pool import FairAsyncQueuePool
from chatr.settings import Settings

#: Seconds to wait for a new PostgreSQL connection (asyncpg's `timeout`, default 60 s).
CONNECT_TIMEOUT = 2.0
#: Seconds any one command may take (asyncpg's `command_timeout`, default none). A chat
#: statement takes milliseconds; one that takes this long is talking to a hung server. After
#: it, asyncpg cancels the query within the same bound or terminates the connection, so a
#: hung connection is dropped from the pool instead of wedging it after the outage.
COMMAND_TIMEOUT = 2.0
#: Seconds to wait for a pooled connection (SQLAlchemy's `pool_timeout`, default 30 s) while
#: the database answers nothing; while it answers, a queue of checkouts is load, and each may
#: wait up to `chatr.fair_pool.BUSY_TIMEOUT`.
POOL_TIMEOUT = 2.0
#: What clients are told (`retryAfter`) when the database is unavailable.
RETRY_AFTER_SECONDS = 2

#: SQLSTATEs (or their two-letter classes) of failures a retry may not meet again: connection
#: exceptions, insufficient resources (too many connections), the server shutting down or
#: starting, a cancelled (timed-out) statement, serialization failures and deadlocks.
_TRANSIENT_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "40001", "40P01", "55P03")


class ConnectionLost(ConnectionError):
    """The database connection closed under a statement run on the driver directly
    (chatr.infra.precompiled); an outage like any other `OSError` here."""


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) is the database being unreachable or hung.

    Such a request did nothing (a statement either commits whole or not at all) and may simply
    be retried; everything else escaping a resolver is a bug. Only explicit causes are followed
    (`raise … from`, SQLAlchemy's `orig`), never an exception merely raised while handling one.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_transient(current):
            return True
        original = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = original if isinstance(original, BaseException) else current.__cause__
    return False


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sa_exc.DBAPIError) and (
        error.connection_invalidated
        or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    ):
        return True
    # OSError covers refused/reset connections and TimeoutError (asyncpg's command timeout);
    # asyncpg's and the adapted DBAPI errors carry the server's SQLSTATE.
    if isinstance(error, OSError):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES)


async def rows_changed(session: AsyncSession, statement: Executable) -> int:
    """Run an UPDATE or DELETE and say how many rows it changed: how a conditional UPDATE
    tells which of two racing requests won. (`AsyncSession.execute` is typed as returning a
    plain `Result`; for DML it is a `CursorResult`, which has the count.)"""
    result = await session.execute(statement)
    return cast("CursorResult[Any]", result).rowcount


def insert_ignoring_conflicts(dialect_name: str, model: Any) -> Any:
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


def create_engine(
    settings: Settings, *, autocommit: bool = False, serving: bool = False
) -> AsyncEngine:
    """The engine for `settings`; `autocommit` gives one whose connections never BEGIN.

    `serving` bounds every command and pool checkout (see COMMAND_TIMEOUT): for the app's
    requests, not for migrations or maintenance, whose statements may legitimately run long.
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url, **options)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_pragmas)
        return engine
    # asyncpg.connect() keywords, passed through by SQLAlchemy's asyncpg dialect.
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    if serving:
        connect_args["command_timeout"] = COMMAND_TIMEOUT
        options["pool_timeout"] = POOL_TIMEOUT
    # No pool_pre_ping: with asyncpg it costs three round trips per checkout (it was a third
    # of a send's database time). A connection broken by a server restart fails one statement,
    # SQLAlchemy then invalidates the pool, and recycling bounds the age of idle ones.
    engine = create_async_engine(
        settings.database_url,
        # Two pools per process (transactional and autocommit), each of up to 2 x pool size
        # (40 connections per process at the default 10), opened when first needed and then
        # kept: no overflow. QueuePool closes an overflow connection as soon as it is
        # returned, so under a steady load above the pool size nearly every send paid for a
        # new connection (a PostgreSQL backend forked, asyncpg's type introspection, every
        # statement prepared and planned again). A request beyond the pool waits in line
        # (see POOL_TIMEOUT).
        pool_size=2 * settings.db_pool_size,
        max_overflow=0,
        # Waiting checkouts are served in order (see chatr.fair_pool).
        poolclass=FairAsyncQueuePool,
        pool_recycle=1800,
        connect_args=connect_args,
        **options,
    )

    # Successes tell the pool the database answers (a queue is then load, not an outage).
    def answered(*_: Any) -> None:
        pool = engine.sync_engine.pool  # (a pool replaced after invalidation included)
        if isinstance(pool, FairAsyncQueuePool):
            pool.answered()

    event.listen(engine.sync_engine, "after_cursor_execute", answered)
    return engine


class Database:
    """Owns the engine; hands out short-lived sessions.

    Sessions are opened per unit of work, never per WebSocket connection: a connection can
    live for hours and must not pin a pooled connection or an identity map that goes stale.
    """

    def __init__(self, settings: Settings) -> None:
        self.engine = create_engine(settings, serving=True)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads and single-statement writes run in autocommit: no BEGIN/COMMIT round trips.
        # A pool of its own: switching a shared connection's isolation level on every
        # checkout and back on every return was measurable on the subscriber's hot path.
        self.autocommit_engine = create_engine(settings, autocommit=True, serving=True)
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
