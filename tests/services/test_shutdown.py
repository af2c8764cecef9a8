"""Shutdown runs every step: a component failing to stop still leaves the database closed."""

from __future__ import annotations

import logging

import pytest

from chatr.db import Database
from chatr.infra.outbox import Outbox
from chatr.pubsub.announcer import Announcer
from chatr.settings import Settings
from tests.support.servers import in_process_app


async def test_shutdown_still_closes_broker_and_database_when_outbox_and_announcer_fail_to_stop(
    settings: Settings,
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given an outbox and an announcer whose stop() raises
    async def explode(self: object, **_: object) -> None:
        raise RuntimeError(f"{type(self).__name__} could not stop")

    monkeypatch.setattr(Outbox, "stop", explode)
    monkeypatch.setattr(Announcer, "stop", explode)
    disposed: list[Database] = []
    dispose = Database.dispose

    async def recording_dispose(self: Database) -> None:
        await dispose(self)
        disposed.append(self)

    monkeypatch.setattr(Database, "dispose", recording_dispose)
    # when an instance starts and shuts down
    with caplog.at_level(logging.ERROR, logger="chatr.supervision"):
        async with in_process_app(settings) as app:
            runtime = app.runtime
    # then both failures were logged and every later step still ran
    failures = [r.getMessage() for r in caplog.records if "shutdown:" in r.getMessage()]
    assert failures == [
        "shutdown: outbox failed; continuing",
        "shutdown: announcer failed; continuing",
    ]
    assert not runtime.broker.ready
    assert disposed == [runtime.db]
