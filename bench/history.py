"""History pages and message search in a 1,000,000-message conversation (prints figures).

What it measures
    One chatr instance (uvicorn, PostgreSQL + Redis, production settings, the environment of
    bench/latency.py) and one DM between two accounts made through GraphQL. The rest of the
    history is written straight into the bench database in SQL (generate_series: a million
    GraphQL sends would take an hour and measure sending, not reading): `--messages` text
    messages of ~8 words from a 600-word vocabulary, one second apart, alternating senders;
    every 10,000th also holds the rare word "zephyr". A reaction on every 10th message. The
    search index is built after the load (dropped and re-created with its own definition,
    as a bulk load would), then VACUUM ANALYZE.

    Then, sequentially over one keep-alive HTTP connection, `--requests` timed requests per
    case (after `--warmup` discarded ones), in rounds that alternate chatr and the baseline:
    - a page of 50 via GraphQL, `conversation(id) { messages(first: 50, after: cursor) }`
      with id, seq, body, time, sender and (once the API has them) reactions, at the newest
      (no cursor), middle (seq N/2) and oldest (the last 50) position;
    - `searchMessages(query, first: 20)` with snippet and highlights, for the rare word
      (~N/10,000 matches) and a common one (~N/100 matches): every match is ranked.
    Baseline, same run: the bare SQL for the same page (the keyset SELECT plus the page's
    reaction counts) and for the same search (GIN match + ts_rank_cd, top 21), over one
    asyncpg connection, timed the same way. The difference is what chatr adds: HTTP,
    GraphQL, authentication, membership checks, the hidden-message rule, the snippet.

    Targets (issue 12): page p99 <= 5 ms, search p99 <= 50 ms.

How to run (from the project root)
    .venv/bin/python bench/history.py [--messages 1000000] [--requests 300] [--warmup 30]
    Seeding a million messages takes one to two minutes on the 2-core machine.

What it needs
    PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth; database `test` is used only to
    CREATE and DROP a fresh `chatr_bench_<random>` database; the test databases are never
    touched) and Redis at 127.0.0.1:6379 (a unique channel prefix). Loopback only. The
    uvicorn process and the database are stopped or dropped on exit, including Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/history.py`
    sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    PG_URL,
    REDIS_URL,
    SEND,
    background_load,
    http_client,
    post_json,
    prepare_environment,
    register,
    run_script,
    start_server,
    summary,
    wait_until_up,
)
from chatr.global_ids import Kind, decode, encode  # noqa: E402
from chatr.services.pagination import encode_cursor  # noqa: E402

TARGET_PAGE_P99_MS = 5.0
TARGET_SEARCH_P99_MS = 50.0
PAGE_SIZE = 50
RARE_WORD = "zephyr"
VOCABULARY = 600

PAGE_FIELDS = "id seq body createdAt sender { id }"
PAGE = """
query Page($id: ID!, $after: String) {
  conversation(id: $id) {
    messages(first: 50, after: $after) {
      edges { cursor node { %s } }
      pageInfo { hasNextPage }
    }
  }
}
"""
SEARCH = """
query Search($q: String!) {
  searchMessages(query: $q, first: 20) {
    edges { cursor node { rank snippet highlights { start end } message { id seq sender { id } } } }
    pageInfo { hasNextPage }
  }
}
"""
BASELINE_PAGE = """
SELECT id, seq, body, created_at, sender_id FROM messages
WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT 51
"""
BASELINE_REACTIONS = """
SELECT message_id, emoji, count(*) FROM reactions WHERE message_id = ANY($1::bigint[])
GROUP BY message_id, emoji
"""
BASELINE_SEARCH = """
SELECT id, seq, sender_id, ts_rank_cd(search_vector, q) AS rank
FROM messages, plainto_tsquery('simple', $2) AS q
WHERE conversation_id = $1 AND search_vector @@ q
ORDER BY rank DESC, id DESC LIMIT 21
"""


def vocabulary(size: int) -> list[str]:
    """Pronounceable, distinct, reproducible words (none of them the rare word)."""
    rng = random.Random(12)
    consonants, vowels = "bcdfghklmnprstvw", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        length = rng.randint(2, 4)
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length))
        if word != RARE_WORD:
            words.add(word)
    return sorted(words)


#: Eight words per message, each picked from the vocabulary ($5) by a different function of
#: the message number g, so words combine in many ways and each occurs in ~1/100 to 1/600.
_PICKS = (
    "g % 97",
    "(g / 7) % 211",
    "(g * 31) % 600",
    "(g / 13) % 389",
    "(g * 7) % 593",
    "g % 101",
    "(g / 3) % 557",
    "g % 53",
)
_BODY = " || ' ' || ".join(f"($5::text[])[1 + {pick}]" for pick in _PICKS)


@dataclass
class Case:
    """One timed request kind: chatr's and the baseline's samples side by side."""

    label: str
    chatr: Callable[[], Awaitable[None]]
    baseline: Callable[[], Awaitable[None]]
    chatr_samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)

    async def run(self, count: int, *, record: bool) -> None:
        for call, samples in (
            (self.chatr, self.chatr_samples),
            (self.baseline, self.baseline_samples),
        ):
            for _ in range(count):
                started = time.perf_counter()
                await call()
                if record:
                    samples.append(time.perf_counter() - started)


async def seed(
    database_url: str, conversation_id: int, senders: tuple[int, int], total: int
) -> float:
    """`total` more messages after the first, a reaction on every 10th; seconds taken."""
    started = time.perf_counter()
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        gin = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'messages' "
            "AND indexdef LIKE '%USING gin%'"
        )
        for index in gin:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        words = vocabulary(VOCABULARY)
        await connection.execute(
            f"""
            INSERT INTO messages (conversation_id, seq, sender_id, kind, body, created_at)
            SELECT $1, g, CASE WHEN g % 2 = 0 THEN $2::bigint ELSE $3::bigint END, 'TEXT',
                   {_BODY} || CASE WHEN g % 10000 = 0 THEN ' {RARE_WORD}' ELSE '' END,
                   now() - make_interval(secs => $4 + 1 - g)
            FROM generate_series(2, $4 + 1) AS g
            """,
            conversation_id,
            senders[0],
            senders[1],
            total,
            words,
        )
        await connection.execute(
            "UPDATE conversations SET last_seq = $2, last_activity_at = now() WHERE id = $1",
            conversation_id,
            total + 1,
        )
        await connection.execute(
            """
            INSERT INTO reactions (message_id, user_id, emoji, created_at)
            SELECT id, CASE WHEN seq % 20 = 0 THEN $2::bigint ELSE $3::bigint END,
                   '👍', created_at
            FROM messages WHERE conversation_id = $1 AND seq % 10 = 0
            """,
            conversation_id,
            senders[0],
            senders[1],
        )
        for index in gin:
            await connection.execute(index["indexdef"])
        await connection.execute("VACUUM ANALYZE messages")
        await connection.execute("VACUUM ANALYZE reactions")
    finally:
        await connection.close()
    return time.perf_counter() - started


def search_words() -> list[tuple[str, str]]:
    """(label, word): the rare word, one in ~1/600 messages, one in ~3 %."""
    words = vocabulary(VOCABULARY)
    return [("rare", RARE_WORD), ("1/600", words[599]), ("~3 %", words[96])]


async def graphql(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    body = await post_json(
        client,
        "/graphql",
        {"query": query, "variables": variables},
        {"authorization": f"Bearer {token}"},
    )
    return body["data"]


async def page_fields(client: httpx.AsyncClient, token: str, conversation_id: str) -> str:
    """The page's message fields: with the reactions summary when the API has it."""
    with_reactions = f"{PAGE_FIELDS} reactions {{ emoji count reactedByMe }}"
    try:
        await graphql(client, token, PAGE % with_reactions, {"id": conversation_id, "after": None})
    except RuntimeError:
        return PAGE_FIELDS
    return with_reactions


def cases(
    client: httpx.AsyncClient,
    token: str,
    connection: asyncpg.Connection,
    conversation_id: int,
    total: int,
    fields: str,
) -> list[Case]:
    last_seq = total + 1
    page = PAGE % fields

    def page_case(label: str, before_seq: int) -> Case:
        after = None if before_seq > last_seq else encode_cursor([before_seq])
        variables = {"id": encode(Kind.CONVERSATION, conversation_id), "after": after}

        async def chatr() -> None:
            data = await graphql(client, token, page, variables)
            assert len(data["conversation"]["messages"]["edges"]) == PAGE_SIZE

        async def baseline() -> None:
            rows = await connection.fetch(BASELINE_PAGE, conversation_id, before_seq)
            await connection.fetch(BASELINE_REACTIONS, [row["id"] for row in rows[:PAGE_SIZE]])
            assert len(rows) >= PAGE_SIZE

        return Case(f"page {label}", chatr, baseline)

    def search_case(label: str, word: str) -> Case:
        async def chatr() -> None:
            data = await graphql(client, token, SEARCH, {"q": word})
            assert data["searchMessages"]["edges"]

        async def baseline() -> None:
            assert await connection.fetch(BASELINE_SEARCH, conversation_id, word)

        return Case(f"search {label} '{word}'", chatr, baseline)

    return [
        page_case("newest", last_seq + 1),
        page_case("middle", last_seq // 2),
        page_case("oldest", PAGE_SIZE + 1),
        *(search_case(label, word) for label, word in search_words()),
    ]


async def match_counts(connection: asyncpg.Connection, conversation_id: int) -> dict[str, int]:
    counts = {}
    for _, word in search_words():
        counts[word] = await connection.fetchval(
            "SELECT count(*) FROM messages WHERE conversation_id = $1 "
            "AND search_vector @@ plainto_tsquery('simple', $2)",
            conversation_id,
            word,
        )
    return counts


def report(results: list[Case]) -> str:
    header = f"{'case':<30}{'n':>5}" + "".join(
        f"{h:>10}" for h in ("p50", "p99", "max", "base p50", "base p99", "p99 added")
    )
    lines = [header, "-" * len(header)]
    for case in results:
        chatr = summary(case.chatr_samples)
        base = summary(case.baseline_samples)
        lines.append(
            f"{case.label:<30}{len(case.chatr_samples):>5}"
            f"{chatr[0]:10.2f}{chatr[2]:10.2f}{chatr[3]:10.2f}{base[0]:10.2f}{base[2]:10.2f}"
            f"{chatr[2] - base[2]:10.2f}"
        )
    lines.append(
        f"(milliseconds; targets: page p99 <= {TARGET_PAGE_P99_MS:g} ms, "
        f"search p99 <= {TARGET_SEARCH_P99_MS:g} ms)"
    )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    tag = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix="chatr-bench-"))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, True)
        env = await prepare_environment(stack, args, tag, log_dir)
        database_url = env["DATABASE_URL"]
        server = start_server("chatr", "chatr.asgi:app", env, log_dir)
        stack.push_async_callback(server.stop)
        try:
            await wait_until_up(server, "/readyz")
            client = await http_client(stack, server)
            alice, token = await register(client, f"alice{tag}")
            bob, _ = await register(client, f"bob{tag}")
            sent = await graphql(
                client,
                token,
                SEND,
                {
                    "input": {
                        "recipientId": bob,
                        "body": "hello",
                        "clientMessageId": str(uuid.uuid4()),
                    }
                },
            )
            conversation_id = decode(sent["sendMessage"]["conversationId"], Kind.CONVERSATION)
            seconds = await seed(
                database_url,
                conversation_id,
                (decode(alice, Kind.USER), decode(bob, Kind.USER)),
                args.messages,
            )
            connection = await asyncpg.connect(database_url, timeout=10)
            stack.push_async_callback(connection.close)
            counts = await match_counts(connection, conversation_id)
            fields = await page_fields(client, token, encode(Kind.CONVERSATION, conversation_id))
            results = cases(client, token, connection, conversation_id, args.messages, fields)
            idle = await background_load()
            print(
                f"chatr history bench: {args.messages + 1:,} messages in one conversation "
                f"(seeded in {seconds:.0f} s), reactions on every 10th; "
                f"{args.requests} requests per case after {args.warmup} warm-up; Python "
                f"{sys.version.split()[0]}, strawberry-graphql {version('strawberry-graphql')}"
            )
            print(
                "search matches: "
                + ", ".join(f"'{word}' {count:,}" for word, count in counts.items())
                + f"; page fields: {fields}"
            )
            print(
                f"before start: machine {idle * 100:.0f}% busy ({os.cpu_count()} cores), "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            for case in results:
                await case.run(args.warmup, record=False)
            rounds = 3
            for number in range(rounds):
                for case in results if number % 2 == 0 else reversed(results):
                    await case.run(args.requests // rounds, record=True)
        except BaseException:
            tail = server.log_tail()
            if tail:
                print(f"--- chatr log (last lines) ---\n{tail}", file=sys.stderr)
            raise
    print(report(results))
    print(f"load average now {os.getloadavg()[0]:.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to seed")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per case")
    parser.add_argument("--warmup", type=int, default=30, help="discarded requests per case")
    parser.add_argument("--postgres", default=PG_URL, help="server URL, no database")
    parser.add_argument("--redis", default=REDIS_URL)
    args = parser.parse_args(argv)
    if args.messages < 20_000 or args.requests < 3:
        parser.error("--messages must be at least 20000 and --requests at least 3")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_script(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
