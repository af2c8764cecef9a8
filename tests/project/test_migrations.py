"""Migrations build the models' schema from empty on both dialects, and nothing drifts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from chatr import migrations
from chatr.db import create_engine
from chatr.models import Base
from chatr.settings import Settings
from tests.support import services


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    await services.require_postgres()
    url = await services.create_database()
    yield url
    await services.drop_database(url)


async def _tables(url: str) -> set[str]:
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_head_then_check_on_an_empty_postgres(empty_postgres: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_postgres)
    await asyncio.to_thread(migrations.check, empty_postgres)  # raises on drift
    assert set(Base.metadata.tables) <= await _tables(empty_postgres)


async def test_upgrade_head_on_an_empty_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await asyncio.to_thread(migrations.upgrade, url)
    await asyncio.to_thread(migrations.check, url)
    assert set(Base.metadata.tables) <= await _tables(url)
