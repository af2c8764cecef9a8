"""The supervision helper: failures are logged and restarted, one-shot failures run their
hook, and the state shows on `healthy`/`status()` (what `/readyz` reports)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chatr.supervision import Supervisor, run_all


async def _until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_failing_task_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(initial_backoff=0.01, max_backoff=0.05)
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError(f"boom {calls}")
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="chatr.supervision"):
        record = supervisor.spawn("flaky", flaky)
        await _until(lambda: calls == 3 and record.running)
    assert record.restarts == 2
    assert record.failures == 2
    assert record.last_error == "RuntimeError: boom 2"
    assert supervisor.healthy
    assert sum("flaky failed" in r.getMessage() for r in caplog.records) == 2
    await supervisor.stop()
    assert not record.running


async def test_a_task_that_returns_by_itself_counts_as_a_failure() -> None:
    supervisor = Supervisor(initial_backoff=0.5, max_backoff=1.0)
    returned = asyncio.Event()

    async def quits() -> None:
        returned.set()

    record = supervisor.spawn("quits", quits)
    await returned.wait()
    await _until(lambda: record.failures == 1)
    assert "returned unexpectedly" in (record.last_error or "")
    # Waiting out its backoff: the instance is not ready meanwhile.
    assert not supervisor.healthy
    assert supervisor.status()["quits"]["healthy"] is False
    await supervisor.stop()


async def test_a_degraded_task_makes_the_supervisor_unhealthy_until_it_recovers() -> None:
    supervisor = Supervisor()
    record = supervisor.spawn("worker", lambda: asyncio.Event().wait())
    await _until(lambda: record.running)
    assert supervisor.healthy
    record.degraded("database unreachable")
    assert not supervisor.healthy
    assert supervisor.status()["worker"]["degraded"] == "database unreachable"
    record.recovered()
    assert supervisor.healthy
    await supervisor.stop()


async def test_a_one_shot_task_that_fails_runs_its_failure_hook() -> None:
    supervisor = Supervisor()
    seen: list[BaseException] = []

    async def watcher() -> None:
        raise ConnectionError("database gone")

    async def close_socket(error: BaseException) -> None:
        seen.append(error)

    record = supervisor.spawn("watcher", watcher, restart=False, on_failure=close_socket)
    await _until(lambda: record.failed)
    assert [type(e) for e in seen] == [ConnectionError]
    assert not supervisor.healthy
    await supervisor.stop()


async def test_a_one_shot_task_that_finishes_is_healthy() -> None:
    supervisor = Supervisor()
    record = supervisor.spawn("once", lambda: asyncio.sleep(0), restart=False)
    await _until(lambda: record.task is not None and record.task.done())
    assert not record.failed
    assert supervisor.healthy
    await supervisor.stop()


async def test_teardown_runs_every_step_even_after_a_failure() -> None:
    ran: list[str] = []

    async def fails() -> None:
        ran.append("outbox")
        raise RuntimeError("sender exploded")

    async def closes() -> None:
        ran.append("database")

    await run_all([("outbox", fails), ("database", closes)])
    assert ran == ["outbox", "database"]
