"""Search's storage exists at head on both dialects, outside the models (migration 0004)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from chatr import migrations
from chatr.db import create_engine
from chatr.settings import Settings


async def test_the_sqlite_search_triggers_exist_at_head_and_keep_the_index_whole(
    tmp_path: Path,
) -> None:
    # given a fresh embedded database at head (a later migration that batch-alters
    # `messages` recreates the table and drops its triggers: this test then fails)
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await asyncio.to_thread(migrations.upgrade, url)
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.begin() as connection:
            triggers = set(
                await connection.scalars(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                )
            )
            assert {
                "message_search_insert",
                "message_search_update",
                "message_search_delete",
            } <= triggers
            # when messages are written, rewritten and deleted straight in SQL
            await connection.execute(
                text(
                    "INSERT INTO users (id, kind, role, username, username_key, display_name,"
                    " privacy, is_active, created_at)"
                    " VALUES (1, 'PERSON', 'USER', 'a', 'a', 'a', '{}', 1, '2026-01-01')"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO conversations (id, kind, status, last_seq, created_at,"
                    " last_activity_at) VALUES (1, 'DIRECT', 'ACTIVE', 3, '2026-01-01',"
                    " '2026-01-01')"
                )
            )
            for seq, body in enumerate(("red apple", "green apple", "ripe pear"), 1):
                await connection.execute(
                    text(
                        "INSERT INTO messages (conversation_id, seq, sender_id, kind, body,"
                        " created_at) VALUES (1, :seq, 1, 'TEXT', :body, '2026-01-01')"
                    ),
                    {"seq": seq, "body": body},
                )
            await connection.execute(text("UPDATE messages SET body = 'red plum' WHERE seq = 1"))
            await connection.execute(
                text("UPDATE messages SET body = NULL, deleted_at = '2026-01-02' WHERE seq = 2")
            )
            await connection.execute(text("DELETE FROM messages WHERE seq = 3"))
            # then the index holds exactly what may be found, and FTS5 finds it whole
            await connection.execute(
                text("INSERT INTO message_search(message_search) VALUES ('integrity-check')")
            )
            found = await connection.scalars(
                text("SELECT rowid FROM message_search WHERE message_search MATCH :q"),
                {"q": "apple OR plum OR pear"},
            )
            assert list(found) == [1]
    finally:
        await engine.dispose()
