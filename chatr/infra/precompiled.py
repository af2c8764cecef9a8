"""A hot statement compiled once by SQLAlchemy and run on the pooled connection's driver.

Why: `AsyncConnection.execute` costs about 100 µs of CPU per statement on top of asyncpg's own
~55 µs for the same round trip (measured on the 2-core machine, `SELECT $1 + 1` on a held
connection): the compiled-cache lookup, the execution context, a greenlet switch, cursor and
result wrappers, events. For the send statement, which runs once per message, that was about
an eighth of a send's CPU (`bench/send_cpu.py`), and checking the connection out through an
`AsyncConnection` rather than from the pool itself cost another ~35 µs.

What stays SQLAlchemy's, so nothing but that overhead goes:

* the statement: built from the same Core fragments and compiled by the engine's own dialect
  (asyncpg's `$n` parameters and bind casts), and the arguments go through the same bind
  processors in the same order, so the driver receives exactly what `execute` would send it
  (tests/services/test_precompiled.py compares the two);
* the pool: the connection is checked out of and returned to the engine's pool
  (chatr.fair_pool's order and timeouts, recycling, the pool's events), and a success tells
  the pool the database answers. While these statements keep coming and nobody else waits
  for a connection, the pool keeps one checked out from one statement to the next
  (`FairAsyncQueuePool.keep`): SQLAlchemy's checkout and return cost as much CPU as
  asyncpg's own work for the statement;
* a lost connection (closed under the statement, SQLAlchemy's own test for asyncpg): it is
  invalidated, the pool recycles every connection opened before it, as SQLAlchemy does on a
  disconnect, and the caller gets `chatr.db.ConnectionLost` (SERVICE_UNAVAILABLE to a
  client); any other error reaches the caller as asyncpg raised it.

Only for statements whose rows need no result processing (ids, numbers): rows come back as
asyncpg records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util.concurrency import greenlet_spawn

from chatr.db import ConnectionLost
from chatr.fair_pool import FairAsyncQueuePool


class Precompiled:
    """`statement` compiled for `dialect` (an asyncpg one), with its argument order."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not (isinstance(compiled, SQLCompiler) and compiled.positional):
            raise ValueError("a statement for a positional-parameter dialect (asyncpg)")
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("expanding and literal-execute parameters are not supported")
        assert compiled.positiontup is not None
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, process in compiled._bind_processors.items():
            if not callable(process):  # (one per element of a tuple parameter)
                raise ValueError("tuple parameters are not supported")
            processors[name] = process
        self.sql = compiled.string
        self._compiled = compiled
        self._steps = tuple((name, processors.get(name)) for name in compiled.positiontup)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for these named parameters (defaults filled in)."""
        values = self._compiled.construct_params(parameters)
        return [
            values[name] if process is None else process(values[name])
            for name, process in self._steps
        ]


async def fetch_row(
    engine: AsyncEngine, statement: Precompiled, parameters: Mapping[str, Any]
) -> asyncpg.Record | None:
    """Run `statement` on one of `engine`'s pooled connections; its first row, if any.

    The connection comes from the pool itself, not through an `AsyncConnection` (a third of
    the CPU of a checkout and return went to that wrapper); the pool's own events still run.
    """
    rows = await _run(engine, statement, parameters, many=False)
    return rows[0] if rows else None


async def fetch_rows(
    engine: AsyncEngine, statement: Precompiled, parameters: Mapping[str, Any]
) -> list[asyncpg.Record]:
    """As `fetch_row`, all the rows."""
    return await _run(engine, statement, parameters, many=True)


async def _run(
    engine: AsyncEngine, statement: Precompiled, parameters: Mapping[str, Any], *, many: bool
) -> list[asyncpg.Record]:
    arguments = statement.arguments(parameters)  # (before checkout: it may raise)
    pool = engine.sync_engine.pool
    pooled = await _checkout(pool)
    driver = pooled.driver_connection
    assert driver is not None  # (checked out: it is open)
    try:
        if many:
            rows: list[asyncpg.Record] = await driver.fetch(statement.sql, *arguments)
        else:
            row = await driver.fetchrow(statement.sql, *arguments)
            rows = [] if row is None else [row]
    except BaseException as error:
        # SQLAlchemy's own test for a disconnect with asyncpg: whatever the error, the
        # connection closed under it (a killed backend shows as "connection is closed" or as
        # an operation left in progress, depending on when the driver noticed).
        lost = driver.is_closed()
        await asyncio.shield(_return_after(error, pool, pooled, lost=lost))
        if lost and isinstance(error, Exception):
            raise ConnectionLost("the database connection closed under a statement") from error
        raise
    if isinstance(pool, FairAsyncQueuePool):
        pool.answered()
        if pool.keep(pooled):
            return rows
    await greenlet_spawn(pooled.close)
    return rows


async def _checkout(pool: Pool) -> PoolProxiedConnection:
    """A connection the pool kept from an earlier hot statement, else one from the pool."""
    if isinstance(pool, FairAsyncQueuePool):
        kept, stale = pool.take_kept()
        if stale:
            await greenlet_spawn(_close_all, stale)
        if kept is not None:
            return kept
    return await greenlet_spawn(pool.connect)


def _close_all(connections: list[PoolProxiedConnection]) -> None:
    for connection in connections:
        connection.close()


async def _return_after(
    error: BaseException, pool: Pool, pooled: PoolProxiedConnection, *, lost: bool
) -> None:
    """Give the connection back after a failed statement. A lost one is closed, and every
    connection opened before it is recycled on its next checkout, as SQLAlchemy does on a
    disconnect; so is one whose statement was cancelled (it may still be running on the
    server: the connection is in no state to reuse)."""
    if lost or isinstance(error, asyncio.CancelledError):
        if lost and isinstance(pool, FairAsyncQueuePool):
            pool.lost(pooled, error)
        await greenlet_spawn(pooled.invalidate, error if isinstance(error, Exception) else None)
    await greenlet_spawn(pooled.close)
