"""A statement run on the driver directly is the statement SQLAlchemy would run, on the same
pool, and a connection lost under it is dealt with as SQLAlchemy deals with a disconnect
(chatr.infra.precompiled)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Integer, bindparam, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatr import fair_pool
from chatr.db import ConnectionLost, create_engine, is_unavailable
from chatr.fair_pool import FairAsyncQueuePool
from chatr.infra import precompiled
from chatr.infra.precompiled import Precompiled
from chatr.services import send_statements
from chatr.services.send_statements import StoredMessage
from chatr.settings import Settings
from tests.support.services import POSTGRES_ADMIN_URL

A_SEND_WITH_EVERYTHING = StoredMessage(
    conversation_id=987_654,
    sender_id=123_456,
    client_id="parity-key",
    body="hello @bob",
    now=datetime(2026, 12, 5, 12, 30, tzinfo=UTC),
    reply_to_id=42,
    reply_snapshot={"body": "earlier", "senderName": "Bob", "kind": "TEXT"},
    forwarded=True,
    mention_ids=(7, 8),
)
A_PLAIN_SEND = StoredMessage(
    conversation_id=987_654,
    sender_id=123_456,
    client_id="parity-key-2",
    body="plain",
    now=datetime(2026, 12, 5, 12, 31, tzinfo=UTC),
)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The app's autocommit engine, with a pool of two."""
    engine = create_engine(settings.with_overrides(db_pool_size=1), autocommit=True, serving=True)
    yield engine
    await engine.dispose()


async def _what_sqlalchemy_sends(
    engine: AsyncEngine, statement: Any, parameters: dict[str, Any]
) -> tuple[str, list[Any]]:
    """The SQL and arguments `Connection.execute` hands the driver (run in a transaction that
    is rolled back: nothing is stored)."""
    seen: list[tuple[str, list[Any]]] = []

    def record(_conn: Any, _cursor: Any, sql: str, arguments: Any, *_rest: Any) -> None:
        seen.append((sql, list(arguments)))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(statement, parameters)
            await transaction.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("stored", [A_SEND_WITH_EVERYTHING, A_PLAIN_SEND], ids=["full", "plain"])
async def test_the_send_statement_reaches_the_driver_as_sqlalchemy_would_send_it(
    engine: AsyncEngine, stored: StoredMessage
) -> None:
    with_mentions = bool(stored.mention_ids)
    statement = send_statements.send_in_one_statement(with_mentions=with_mentions)
    parameters = stored.parameters()

    expected_sql, expected_arguments = await _what_sqlalchemy_sends(engine, statement, parameters)
    direct = Precompiled(statement, engine.dialect)

    assert direct.sql == expected_sql
    assert direct.arguments(parameters) == expected_arguments
    # (the JSON snapshot went through the JSON type's bind processor, as a string)
    if stored.reply_snapshot is not None:
        assert any(
            isinstance(value, str) and '"senderName"' in value for value in expected_arguments
        )


async def test_rows_come_back_as_sqlalchemy_would_return_them(engine: AsyncEngine) -> None:
    statement = select(bindparam("a", type_=Integer) + 1, bindparam("b", type_=Integer) * 2).where(
        bindparam("c", type_=Integer) > 0
    )
    parameters = {"a": 41, "b": 21, "c": 1}

    async with engine.connect() as connection:
        expected = (await connection.execute(statement, parameters)).first()
    row = await precompiled.fetch_row(engine, Precompiled(statement, engine.dialect), parameters)
    no_row = await precompiled.fetch_row(
        engine, Precompiled(statement, engine.dialect), {**parameters, "c": 0}
    )

    assert expected is not None and row is not None
    assert tuple(row) == tuple(expected) == (42, 42)
    assert no_row is None


async def test_a_driver_error_reaches_the_caller_as_the_drivers_own(engine: AsyncEngine) -> None:
    statement = select(bindparam("a", type_=Integer) / bindparam("b", type_=Integer))

    with pytest.raises(asyncpg.DivisionByZeroError):
        await precompiled.fetch_row(
            engine, Precompiled(statement, engine.dialect), {"a": 1, "b": 0}
        )
    # (a bug, not an outage; the connection stays in the pool and works)
    row = await precompiled.fetch_row(
        engine, Precompiled(statement, engine.dialect), {"a": 4, "b": 2}
    )
    assert row is not None and row[0] == 2


async def test_after_a_lost_connection_the_next_statement_gets_a_fresh_one(
    engine: AsyncEngine,
) -> None:
    # given both pooled connections open and idle, then both backends killed (a restart)
    first, second = await engine.connect(), await engine.connect()
    pids = []
    for connection in (first, second):
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        pids.append(driver.get_server_pid())
    await first.close()
    await second.close()
    killer = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        for pid in pids:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()
    statement = Precompiled(select(bindparam("a", type_=Integer) + 1), engine.dialect)

    # when a statement meets a dead connection
    with pytest.raises(ConnectionLost) as lost:
        await precompiled.fetch_row(engine, statement, {"a": 1})

    # then the failure is an outage (SERVICE_UNAVAILABLE to a client) and the next statement
    # does not meet the other dead connection: connections older than the lost one are
    # recycled, as SQLAlchemy does on a disconnect
    assert is_unavailable(lost.value)
    row = await precompiled.fetch_row(engine, statement, {"a": 1})
    assert row is not None and row[0] == 2
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1


async def test_an_unreachable_database_is_an_outage_not_a_bug(settings: Settings) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/nowhere"
    engine = create_engine(settings.with_overrides(database_url=url), autocommit=True)
    statement = Precompiled(select(bindparam("a", type_=Integer) + 1), engine.dialect)
    try:
        with pytest.raises(Exception) as failure:
            await precompiled.fetch_row(engine, statement, {"a": 1})
    finally:
        await engine.dispose()

    assert is_unavailable(failure.value)


# -- connections kept between hot statements (FairAsyncQueuePool.keep) ------------------------

_PLUS_ONE = select(bindparam("a", type_=Integer) + 1)


def _checkouts(engine: AsyncEngine) -> list[int]:
    """Counts the pool's checkouts (SQLAlchemy's own event) from now on."""
    seen: list[int] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: seen.append(1))
    return seen


def _fair_pool(engine: AsyncEngine) -> FairAsyncQueuePool:
    pool = engine.sync_engine.pool
    assert isinstance(pool, FairAsyncQueuePool)
    return pool


async def test_hot_statements_in_a_row_check_one_connection_out_once(
    engine: AsyncEngine,
) -> None:
    statement = Precompiled(_PLUS_ONE, engine.dialect)
    checkouts = _checkouts(engine)

    for number in range(5):
        row = await precompiled.fetch_row(engine, statement, {"a": number})
        assert row is not None and row[0] == number + 1

    assert len(checkouts) == 1
    assert _fair_pool(engine).kept == 1


async def test_a_checkout_that_would_wait_takes_the_kept_connection_back(
    engine: AsyncEngine,
) -> None:
    # given a pool of two: one connection kept by a hot statement, the other in use
    await precompiled.fetch_row(engine, Precompiled(_PLUS_ONE, engine.dialect), {"a": 1})
    assert _fair_pool(engine).kept == 1
    async with engine.connect() as busy:
        await busy.execute(text("SELECT 1"))

        # when someone else needs a connection, it gets the kept one without waiting
        async with asyncio.timeout(5), engine.connect() as other:
            assert (await other.execute(text("SELECT 2"))).scalar() == 2

        # and nothing is kept while anyone could need it
        assert _fair_pool(engine).kept == 0


async def test_a_connection_unused_for_keep_seconds_goes_back_to_the_pool(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = Precompiled(_PLUS_ONE, engine.dialect)
    await precompiled.fetch_row(engine, statement, {"a": 1})
    checkouts = _checkouts(engine)

    monkeypatch.setattr(fair_pool, "KEEP_SECONDS", 0.0)
    await asyncio.sleep(0.01)
    row = await precompiled.fetch_row(engine, statement, {"a": 2})

    assert row is not None and row[0] == 3
    assert len(checkouts) == 1  # the idle one went back and was checked out anew


async def test_a_connection_the_pool_would_recycle_is_not_kept(engine: AsyncEngine) -> None:
    pool = _fair_pool(engine)
    pool._recycle = 0  # every connection is past its recycle age
    await asyncio.sleep(0.01)

    await precompiled.fetch_row(engine, Precompiled(_PLUS_ONE, engine.dialect), {"a": 1})

    assert pool.kept == 0


async def test_disposing_the_engine_closes_the_kept_connections(settings: Settings) -> None:
    engine = create_engine(settings.with_overrides(db_pool_size=1), autocommit=True, serving=True)
    await precompiled.fetch_row(engine, Precompiled(_PLUS_ONE, engine.dialect), {"a": 1})
    kept = _fair_pool(engine)._kept[0][0].driver_connection
    assert kept is not None and not kept.is_closed()

    await engine.dispose()

    assert kept.is_closed()
