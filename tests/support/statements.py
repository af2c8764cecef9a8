"""Record every SQL statement an app runs, whichever way it reaches the database.

Most statements pass SQLAlchemy's `before_cursor_execute` event. The send statement does not:
chatr.infra.precompiled runs it on the asyncpg connection directly, so the recorder also
attaches asyncpg's query logger to every connection checked out meanwhile, and to those the
pool keeps checked out between sends (`FairAsyncQueuePool.keep`, reused without a checkout).
asyncpg logs only what is run unprepared (`fetchrow`, `execute`, `executemany`); SQLAlchemy
prepares its statements, except `executemany`, which the logger would see a second time, so
driver log lines that arrive while SQLAlchemy is executing on that connection are left out.
asyncpg calls its loggers on the loop's next turn, so the recorder is an async context manager
that gives them that turn before it closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event

from chatr.fair_pool import FairAsyncQueuePool
from tests.support.servers import RunningApp


@asynccontextmanager
async def recorded_statements(app: RunningApp) -> AsyncIterator[list[str]]:
    """The SQL both engines (the send runs on the autocommit one) run while the block is open."""
    statements: list[str] = []
    watched: dict[int, tuple[Any, Any]] = {}
    inside_sqlalchemy: set[int] = set()
    db = app.runtime.db
    engines = [db.engine.sync_engine, db.autocommit_engine.sync_engine]

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)
        inside_sqlalchemy.add(id(conn.connection.driver_connection))

    def after(conn: Any, *_args: Any) -> None:
        inside_sqlalchemy.discard(id(conn.connection.driver_connection))

    def on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        watch_driver(record.driver_connection)

    def watch_driver(driver: Any) -> None:
        if id(driver) in watched or not hasattr(driver, "add_query_logger"):
            return  # already watched, or not asyncpg (SQLite: everything passes SQLAlchemy)

        def on_driver(logged: Any) -> None:
            if id(driver) not in inside_sqlalchemy:
                statements.append(logged.query)

        driver.add_query_logger(on_driver)
        watched[id(driver)] = (driver, on_driver)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", before),
        ("after_cursor_execute", after),
        ("checkout", on_checkout),
    ]
    for engine in engines:
        for name, listener in listeners:
            event.listen(engine, name, listener)
        if isinstance(engine.pool, FairAsyncQueuePool):
            for kept in engine.pool.kept_connections():
                watch_driver(kept.driver_connection)
    try:
        yield statements
        # asyncpg calls its query loggers soon after a statement, not in it: let them run
        # (an answer can be back before then, when nothing else awaits after the statement).
        await asyncio.sleep(0)
    finally:
        for engine in engines:
            for name, listener in listeners:
                event.remove(engine, name, listener)
        for driver, on_driver in watched.values():
            driver.remove_query_logger(on_driver)
