"""Suite-wide fixtures: real PostgreSQL and Redis (or the embedded default for smoke tests).

Every test gets a clean database (tables truncated after each test) and a unique pub/sub
channel prefix, so tests never see each other's rows or messages. Under pytest-xdist
(`./scripts/test` runs the suite in parallel) each worker is its own test session, so it has
its own database: the truncation of one worker never touches another's rows.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from chatr import migrations
from chatr.db import create_engine
from chatr.models import Base
from chatr.settings import Settings
from tests.support import services
from tests.support.servers import RunningApp, in_process_app, served_app

POSTGRES = "postgres"
EMBEDDED = "embedded"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Smoke tests run on both backends; everything else on PostgreSQL + Redis."""
    if "backend" in metafunc.fixturenames:
        smoke = metafunc.definition.get_closest_marker("smoke") is not None
        metafunc.parametrize("backend", [POSTGRES, EMBEDDED] if smoke else [POSTGRES])


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    await services.require_postgres()
    url = await services.create_database()
    await asyncio.to_thread(migrations.upgrade, url)
    yield url
    await services.drop_database(url)


@pytest.fixture(scope="session")
async def redis_url() -> str:
    await services.require_redis()
    return services.REDIS_URL


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("embedded") / "chatr.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrations.upgrade, url)
    return url


async def _truncate(settings: Settings) -> None:
    engine = create_engine(settings)
    tables = [t.name for t in Base.metadata.sorted_tables if t.name != "event_stream"]
    try:
        async with engine.begin() as connection:
            if settings.is_sqlite:
                for name in reversed(tables):
                    await connection.execute(text(f'DELETE FROM "{name}"'))
            else:
                await connection.execute(
                    text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                )
            await connection.execute(text("UPDATE event_stream SET position = 0"))
    finally:
        await engine.dispose()


@pytest.fixture
def backend() -> str:
    """Overridden by parametrisation (see pytest_generate_tests)."""
    return POSTGRES


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    """Settings for this test's app instances; only the backend's services are required."""
    if backend == EMBEDDED:
        database_url = request.getfixturevalue("sqlite_url")
        broker_url = "memory://"
    else:
        database_url = request.getfixturevalue("postgres_url")
        broker_url = request.getfixturevalue("redis_url")
    return Settings(
        database_url=database_url,
        broker_url=broker_url,
        channel_prefix=f"chatr-test-{services.worker()}-{uuid.uuid4().hex[:10]}",
        jwt_secret=secrets.token_urlsafe(48),
        # Tests sign up far more users from one address than a person would; the rate-limit
        # tests switch limits back on.
        rate_limits=False,
        # A small pool (at most 2 x 5 connections per app instance) keeps three workers, each
        # running two-instance tests, well under PostgreSQL's 100 connections.
        db_pool_size=5,
        # Uploads go to the test's own folder, removed with it.
        media_dir=request.getfixturevalue("tmp_path") / "media",
        # No link previews (they would fetch from the internet): tests/media turns them on
        # against a page server of its own on loopback.
        link_previews=False,
    )


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[str]:
    """The test's database URL; emptied again when the test ends."""
    yield settings.database_url
    await _truncate(settings)


@pytest.fixture
async def app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings) as running:
        yield running


@pytest.fixture
async def server(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with served_app(settings) as running:
        yield running
