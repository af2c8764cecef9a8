"""Alembic environment: async engines on both dialects, batch mode for SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from chatr.db import create_engine
from chatr.models import Base
from chatr.models.message import is_search_storage
from chatr.settings import load_settings, normalise_database_url

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    # `chatr migrate` and the tests pass the URL explicitly; plain `alembic` uses the settings.
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return normalise_database_url(url) if url else load_settings().database_url


def _include_name(name: str | None, kind: str, _parents: object) -> bool:
    """Search's storage is made in SQL by migration 0004 and is not a model."""
    return not is_search_storage(name, kind)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = _database_url()
    settings = load_settings().with_overrides(database_url=url)
    engine = create_engine(settings)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
