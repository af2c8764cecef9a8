"""Persisted sends per second from 1, 10, 100 and 1,000 conversations (prints figures).

What it measures
    chatr: TWO uvicorn chatr instances (PostgreSQL + Redis, production settings, the same
    environment as bench/latency.py). For each of N conversations (groups seeded through
    chatr's own services, one sender each, who owns it) one sender loop posts
    `sendMessage(input: {conversationId, body, clientMessageId})` over HTTP, one message in
    flight per conversation (the next is sent when the previous one's response arrived, so
    each conversation's sends stay strictly ordered). Loop i talks to instance i mod 2, so the
    load goes through both instances. A send counts once its mutation answered without errors:
    by then the message and its event are committed. Latency is the POST round trip.

    Both stacks hold at most 10 PostgreSQL connections per process for sends (chatr:
    CHATR_DB_POOL_SIZE=5, whose autocommit pool is twice that).

    After seeding, the database is analyzed (`analyze_database`): a production cluster's
    autovacuum would have gathered the planner's statistics by then, and without them the
    send statement read all of `conversations` instead of using its primary key.

    Baseline, same run, same client code: bench/baseline_app.py (two uvicorn processes, a bare
    starlette app, asyncpg pool + redis-py): `POST /send` takes the next seq and inserts the
    row in one PostgreSQL transaction, then PUBLISHes. Its N conversations are rows of
    `bench_conversations`.

    Each concurrency level runs `--rounds` rounds that alternate the order of the two stacks,
    so machine noise hits both alike; a round runs every loop for `--warmup` seconds
    (discarded) and then `--seconds` seconds (measured: sends answered in the window, with
    their whole round trip, wherever it started). sends/s = measured sends / measured
    seconds. A loop starts no send after the window; the round ends when the last answer is
    in. Server CPU per send is read from
    /proc for the two uvicorn processes of each stack; a second table splits each send's CPU
    between the servers, PostgreSQL, Redis and the whole machine (shared processes: each
    figure is what they spent while that stack ran, over its sends), and its `ceiling`
    column is the ratio chatr would reach if its servers cost per send what the baseline's
    do, the rest as measured: while the cores are saturated, the most that work on the
    servers alone can buy on this machine.
    The same table gives the bytes of PostgreSQL write-ahead log per send (`WAL B`, the
    cluster's whole WAL over the window): each commit waits for its WAL to be flushed, and
    flushes queue behind one another (`WalPosition`).

    Then the database write path alone (`--statement-connections`, default 1, 4, 16): chatr's
    one-statement send (the compiled statement of chatr.services.send_statements, on chatr's
    autocommit engine's connections, run on asyncpg directly as chatr does) against the
    baseline's transaction (its UPDATE seq + INSERT, asyncpg), from N connections, one
    conversation each, same rounds and window. On a machine whose CPU the servers saturate,
    this is where a lock shared by all writers shows (or not).

    The client is this one process: a minimal keep-alive HTTP/1.1 client, an asyncio
    protocol (one connection per loop) whose payloads are encoded once and numbered per send,
    so that the client's own CPU is small next to the servers' and alike for both stacks. It
    shares the machine's cores with the servers, so its CPU per send is reported too
    (`client`): before it was trimmed (asyncio streams, json.dumps per send, a task per
    request for its timeout) it was ~16% of the machine's CPU per send at 100 conversations.

    Targets (issue 14): chatr >= 0.8 x the baseline's sends/s at every level, p99 <= 50 ms at
    100 conversations, and chatr's sends/s growing with concurrency as the baseline's does.

How to run (from the project root)
    .venv/bin/python bench/throughput.py [--conversations 1,10,100,1000] [--seconds 5]
        [--warmup 1] [--rounds 2] [--send-batch-concurrency N]
    Seeding 1,000 senders and groups takes ~20 s; each level then takes
    2 x rounds x (warmup + seconds).

What it needs
    PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth; database `test` is used only to
    CREATE and DROP a fresh `chatr_bench_<random>` database) and Redis at 127.0.0.1:6379 (a
    unique channel prefix; nothing is flushed). Loopback only. It raises its own open-files
    limit to the hard limit when 2 x the largest level's sockets need it. Everything it starts
    (four uvicorn processes, each in its own process group, and the database) is stopped or
    dropped on exit, including Ctrl-C and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/throughput.py`
    sys.path.insert(0, str(ROOT))

from bench.baseline_app import INSERT_MESSAGE, NEXT_SEQ  # noqa: E402
from bench.fanout import raise_open_files_limit  # noqa: E402
from bench.latency import (  # noqa: E402
    PG_URL,
    REDIS_URL,
    Server,
    analyze_database,
    background_load,
    create_baseline_tables,
    machine_busy_seconds,
    prepare_environment,
    run_script,
    start_server,
    stat_cpu_seconds,
    wait_until_up,
)
from bench.seeding import (  # noqa: E402
    SEED_CONCURRENCY,
    access_tokens,
    bounded,
    create_users,
    seeding_runtime,
)
from chatr.global_ids import Kind, encode  # noqa: E402

TARGET_RATIO = 0.8
#: bench/baseline_app.py's asyncpg pool, per process.
BASELINE_POOL_SIZE = 10
TARGET_P99_MS = 50.0
TARGET_P99_AT = 100
CONNECT_CONCURRENCY = 50
REQUEST_TIMEOUT = 120.0

SEND = (
    "mutation Send($input: SendMessageInput!) "
    "{ sendMessage(input: $input) { id seq conversationId } }"
)


# -- a minimal HTTP/1.1 client -----------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads Content-Length answers.

    The bench's CPU is the machine's too: on two cores every microsecond the client spends is
    one the servers do not get. httpx costs ~0.3 ms of CPU per request, asyncio's streams a
    dozen calls per answer (a `readuntil` per header line); this protocol parses each answer
    once, when its last byte arrives, and wakes the waiting sender with one future.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None

    @classmethod
    async def open(cls, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(cls, "127.0.0.1", port)
        return connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        answer = self._answer
        if answer is None or answer.done():
            return
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self._buffer[:head_end]).lower()
        marker = head.find(b"\r\ncontent-length:")
        if marker < 0:
            answer.set_exception(RuntimeError("the answer has no Content-Length"))
            return
        value_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : value_end if value_end >= 0 else len(head)])
        body_start = head_end + 4
        if len(self._buffer) < body_start + length:
            return
        status = int(head.split(b" ", 2)[1])
        body = bytes(self._buffer[body_start : body_start + length])
        del self._buffer[: body_start + length]
        answer.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc or ConnectionError("the server closed the connection"))

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """`head` is the request line and headers without Content-Length or the blank line."""
        assert self._transport is not None
        if self._transport.is_closing():
            raise ConnectionError("the connection is closed")
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        return await self._answer

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def request_head(path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode()


# -- the stacks --------------------------------------------------------------------------------


@dataclass
class Sender:
    """One conversation's sender loop: where it posts and what."""

    connection: Connection
    head: bytes
    payload: Callable[[int], bytes]


@dataclass
class Level:
    """One stack's figures at one concurrency level, summed over its rounds."""

    latencies: list[float] = field(default_factory=list)
    #: Attempts answered SERVICE_UNAVAILABLE in the window (then retried).
    refused: int = 0
    seconds: float = 0.0
    #: CPU seconds in the measured windows: the stack's two servers, all PostgreSQL
    #: processes, Redis, and the whole machine (servers, PostgreSQL, Redis, this client).
    cpu: float = 0.0
    postgres_cpu: float = 0.0
    redis_cpu: float = 0.0
    #: This process: the bench's own HTTP client (part of the machine's figure).
    client_cpu: float = 0.0
    machine_cpu: float = 0.0
    #: PostgreSQL's write-ahead log written in the measured windows (the whole cluster's).
    wal_bytes: int = 0

    def wal_per_send(self) -> float:
        return self.wal_bytes / len(self.latencies) if self.latencies else 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


@dataclass
class StackUnderTest:
    name: str
    servers: list[Server]
    #: (server, conversation index) -> (path, headers, payload builder)
    build: Callable[[Server, int], tuple[str, dict[str, str], Callable[[int], bytes]]]
    check: Callable[[int, bytes], bool]

    async def senders(self, count: int) -> list[Sender]:
        async def one(index: int) -> Sender:
            server = self.servers[index % len(self.servers)]
            path, headers, payload = self.build(server, index)
            connection = await Connection.open(server.port)
            return Sender(connection, request_head(path, server.port, headers), payload)

        return await bounded((one(i) for i in range(count)), CONNECT_CONCURRENCY)

    def cpu(self) -> float:
        return sum(server.cpu() for server in self.servers)


#: Refused: the instance shed the send (its pool stayed exhausted); the client retries it.
RETRY_AFTER_REFUSAL = 0.1


def check_chatr(status: int, body: bytes) -> bool:
    """True: persisted; False: refused with SERVICE_UNAVAILABLE (retry); else raise.

    An answer with data and no `errors` key is a success without parsing it (the client's
    CPU is the machine's); anything else is parsed and judged."""
    if status == 200 and body.startswith(b'{"data":{') and b'"errors"' not in body:
        return True
    answer = json.loads(body)
    if status == 200 and answer.get("data") and not answer.get("errors"):
        return True
    codes = [e.get("extensions", {}).get("code") for e in answer.get("errors") or []]
    if status == 200 and codes == ["SERVICE_UNAVAILABLE"]:
        return False
    raise RuntimeError(f"chatr send failed: {status} {body[:300]!r}")


def check_baseline(status: int, body: bytes) -> bool:
    if status != 200:
        raise RuntimeError(f"baseline send failed: {status} {body[:300]!r}")
    return True


class WalPosition:
    """Where PostgreSQL's write-ahead log ends, in bytes, read on a connection of its own.

    Every persisted send waits for its commit's WAL to reach the disk, and the flushes of
    all connections go one after the other: at the database alone, chatr's statement spent
    half its time waiting for them (pg_stat_activity: LWLock WALWrite and IO WALSync), so
    the bytes of WAL a send writes are as much its cost as its CPU. The cluster's whole WAL
    counts: nothing else should write to it during a run.
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def read(self) -> int:
        return int(await self._connection.fetchval("SELECT pg_current_wal_lsn() - '0/0'"))


async def run_round(
    stack: StackUnderTest,
    senders: list[Sender],
    level: Level,
    args: argparse.Namespace,
    wal: WalPosition,
) -> None:
    """Every loop sends back to back for warm-up + measured seconds; records the window."""
    started = time.perf_counter()
    window_start = started + args.warmup
    window_end = window_start + args.seconds
    cpu_at_window: list[tuple[float, float, float]] = []
    postgres, redis = ProcessesCpu("postgres"), ProcessesCpu("redis-server")

    async def loop(sender: Sender) -> None:
        number = 0
        first_attempt: float | None = None
        while True:
            sent = time.perf_counter()
            if sent >= window_end:
                return
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, body = await sender.connection.post(sender.head, sender.payload(number))
            answered = time.perf_counter()
            if not stack.check(status, body):
                # The same message again (same client id: idempotent), timed from its first try.
                if window_start <= answered <= window_end:
                    level.refused += 1
                first_attempt = first_attempt or sent
                await asyncio.sleep(RETRY_AFTER_REFUSAL)
                continue
            number += 1
            if window_start <= answered <= window_end:
                level.latencies.append(answered - (first_attempt or sent))
            first_attempt = None

    async def cpu_window() -> None:
        await asyncio.sleep(max(window_start - time.perf_counter(), 0))
        cpu_at_window.append((stack.cpu(), machine_busy_seconds()[0], time.process_time()))
        wal_at_start = await wal.read()
        times = process_times()
        for tracked in (postgres, redis):
            tracked.start(times)
        while (left := window_end - time.perf_counter()) > 0:
            await asyncio.sleep(min(left, ProcessesCpu.INTERVAL))
            times = process_times()
            for tracked in (postgres, redis):
                tracked.sample(times)
        cpu_at_window.append((stack.cpu(), machine_busy_seconds()[0], time.process_time()))
        level.wal_bytes += await wal.read() - wal_at_start

    await asyncio.gather(cpu_window(), *(loop(s) for s in senders))
    level.seconds += args.seconds
    (servers0, machine0, client0), (servers1, machine1, client1) = cpu_at_window
    level.cpu += servers1 - servers0
    level.machine_cpu += machine1 - machine0
    level.client_cpu += client1 - client0
    level.postgres_cpu += postgres.spent()
    level.redis_cpu += redis.spent()


class ProcessesCpu:
    """CPU seconds spent by every process named `command` (PostgreSQL: its backends too) over
    a window. Sampled every `INTERVAL` seconds, so a process that exits in the window keeps
    all but its last interval's time (asyncpg's pool replaces a connection every 50,000
    queries: a backend may well exit mid-window), and one born in it counts from zero.
    Each sample is one pass over /proc for every tracker (`process_times`): the pass is the
    bench's CPU, and so the machine's."""

    INTERVAL = 0.1

    def __init__(self, command: str) -> None:
        self._command = command
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def start(self, times: dict[int, tuple[str, float]]) -> None:
        self._first = self._mine(times)
        self._last = dict(self._first)

    def sample(self, times: dict[int, tuple[str, float]]) -> None:
        for pid, seconds in self._mine(times).items():
            self._first.setdefault(pid, 0.0)
            self._last[pid] = seconds

    def spent(self) -> float:
        return sum(last - self._first[pid] for pid, last in self._last.items())

    def _mine(self, times: dict[int, tuple[str, float]]) -> dict[int, float]:
        return {
            pid: seconds for pid, (command, seconds) in times.items() if command == self._command
        }


def process_times() -> dict[int, tuple[str, float]]:
    """Every process's command name and CPU seconds so far, by pid."""
    found: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        found[int(stat.parent.name)] = (command, stat_cpu_seconds(text))
    return found


@dataclass
class ChatrSeed:
    conversation_ids: list[int]
    #: The sender (owner) of each conversation.
    user_ids: list[int]
    tokens: list[str]
    seconds: float


async def seed_chatr(env: dict[str, str], count: int) -> ChatrSeed:
    """`count` senders, each owning one group, through chatr's services (bench/seeding.py)."""
    from chatr.services import groups

    started = time.monotonic()
    async with seeding_runtime(env) as rt:
        accounts = await create_users(rt, count, username="tp_{:04d}")
        created = await bounded(
            (
                groups.create(rt, creator_id=user.id, name=f"Throughput {index}")
                for index, user in enumerate(accounts)
            ),
            SEED_CONCURRENCY,
        )
        tokens = await access_tokens(rt, accounts, device_label="bench/throughput.py")
    return ChatrSeed(
        [group.id for group in created],
        [user.id for user in accounts],
        tokens,
        time.monotonic() - started,
    )


async def create_baseline_conversations(database_url: str, count: int) -> None:
    """Rows 1..count of bench_conversations (create_baseline_tables made row 1)."""
    await create_baseline_tables(database_url)
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await connection.execute(
            "INSERT INTO bench_conversations (id) SELECT generate_series(2, $1)", count
        )
    finally:
        await connection.close()


def numbered(document: dict[str, Any]) -> Callable[[int], bytes]:
    """A payload builder: `document` as JSON with each `{n}` in its strings replaced by the
    send's number. Encoded once, joined per send: the same bytes json.dumps would give, for
    a fraction of the client's CPU (both stacks' payloads are built this way)."""
    parts = json.dumps(document).encode().split(b"{n}")

    def payload(number: int) -> bytes:
        return (b"%d" % number).join(parts)

    return payload


def chatr_stack(servers: list[Server], seed: ChatrSeed, tag: str) -> StackUnderTest:
    def build(_server: Server, index: int) -> tuple[str, dict[str, str], Callable[[int], bytes]]:
        conversation_id = encode(Kind.CONVERSATION, seed.conversation_ids[index])
        headers = {"Authorization": f"Bearer {seed.tokens[index]}"}
        # Unique per round and level: the loop numbers restart at 0 each round.
        prefix = f"{tag}-{index}-{secrets.token_hex(3)}"

        message = {
            "conversationId": conversation_id,
            "body": "m{n}",
            "clientMessageId": f"{prefix}-{{n}}",
        }
        return "/graphql", headers, numbered({"query": SEND, "variables": {"input": message}})

    return StackUnderTest("chatr", servers, build, check_chatr)


def baseline_stack(servers: list[Server]) -> StackUnderTest:
    def build(_server: Server, index: int) -> tuple[str, dict[str, str], Callable[[int], bytes]]:
        return "/send", {}, numbered({"conversationId": index + 1, "body": "m{n}"})

    return StackUnderTest("baseline", servers, build, check_baseline)


# -- statistics and output ---------------------------------------------------------------------


def percentile_ms(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def report(levels: list[int], results: dict[int, dict[str, Level]]) -> str:
    header = (
        f"{'convs':>6} | {'chatr sends/s':>13} {'p50':>7} {'p99':>7} {'cpu/send':>9} | "
        f"{'baseline sends/s':>16} {'p50':>7} {'p99':>7} {'cpu/send':>9} | {'ratio':>6} | "
        f"{'chatr refused':>13}"
    )
    lines = [header, "-" * len(header)]
    verdicts = []
    previous: tuple[int, tuple[float, float]] | None = None
    #: "Throughput must grow with concurrency as the baseline's does": from one level to the
    #: next, chatr's sends/s must change by at least 90% of the baseline's factor (10% for
    #: noise), or reach at least the baseline's sends/s at the higher level: a stack ahead of
    #: the baseline at the lower level has less to grow by, and one that keeps up with it at
    #: the higher level grew as much as it had to. Not "never drop": on two cores the
    #: baseline itself drops from 100 to 1,000.
    grows = True
    steps: list[str] = []
    for count in levels:
        chatr, base = results[count]["chatr"], results[count]["baseline"]
        ratio = chatr.rate / base.rate if base.rate else float("nan")
        cells = []
        for level in (chatr, base):
            sends = len(level.latencies)
            cpu_ms = level.cpu / sends * 1000 if sends else float("nan")
            cells.append(
                f"{percentile_ms(level.latencies, 50):7.1f} "
                f"{percentile_ms(level.latencies, 99):7.1f} {cpu_ms:7.2f}ms"
            )
        lines.append(
            f"{count:>6} | {chatr.rate:13.0f} {cells[0]} | {base.rate:16.0f} {cells[1]} | "
            f"{ratio:5.2f}x | {chatr.refused:13d}"
        )
        verdicts.append(ratio >= TARGET_RATIO)
        if previous is not None and previous[1][0] and previous[1][1]:
            chatr_change = chatr.rate / previous[1][0]
            base_change = base.rate / previous[1][1]
            kept_pace = chatr_change >= base_change * 0.9
            step_grows = kept_pace or chatr.rate >= base.rate
            grows = grows and step_grows
            verdict = "ok" if kept_pace else "ok, ahead of the baseline" if step_grows else "short"
            steps.append(
                f"{previous[0]}->{count}: x{chatr_change:.2f} vs x{base_change:.2f} {verdict}"
            )
        previous = (count, (chatr.rate, base.rate))
    lines.append(
        "(p50/p99 in ms: POST round trip, from a send's first attempt; cpu/send: the stack's "
        "two server processes; refused: attempts answered SERVICE_UNAVAILABLE, then retried)"
    )
    p99_at = results.get(TARGET_P99_AT, {}).get("chatr")
    p99_text = "not measured"
    if p99_at is not None:
        p99 = percentile_ms(p99_at.latencies, 99)
        p99_text = f"{p99:.1f} ms: {'PASS' if p99 <= TARGET_P99_MS else 'FAIL'}"
    lines.append(
        f"targets: chatr >= {TARGET_RATIO}x baseline at every level: "
        f"{'PASS' if all(verdicts) else 'FAIL'}; p99 <= {TARGET_P99_MS:g} ms at "
        f"{TARGET_P99_AT} conversations: {p99_text}; chatr sends/s grows with concurrency "
        "as the baseline's does (each level's change >= 0.9 x the baseline's, or the "
        "higher level's sends/s >= the baseline's): "
        f"{'PASS' if grows else 'FAIL'}"
    )
    if steps:
        lines.append(f"  (chatr's change vs the baseline's: {'; '.join(steps)})")
    return "\n".join(lines)


def servers_free_ceiling(chatr: Level, base: Level) -> float:
    """The ratio chatr's sends/s would reach if its two servers cost exactly what the
    baseline's do per send, everything else (PostgreSQL, Redis, the client) as measured.

    While the machine's cores are saturated, sends/s follow the machine's CPU per send, so
    this is the most any work on the servers (GraphQL, HTTP, auth, the services) can buy on
    this machine; what is above it is the database's and Redis's work. Meaningless where the
    stacks are not CPU-bound (one conversation: there the round trips set the pace)."""
    chatr_sends, base_sends = len(chatr.latencies), len(base.latencies)
    if not chatr_sends or not base_sends:
        return float("nan")
    base_machine = base.machine_cpu / base_sends
    floor = (chatr.machine_cpu - chatr.cpu) / chatr_sends + base.cpu / base_sends
    return base_machine / floor if floor > 0 else float("nan")


def report_cpu(levels: list[int], results: dict[int, dict[str, Level]]) -> str:
    """Where each stack's CPU went per persisted send (ms): the two servers, PostgreSQL,
    Redis, this process (the HTTP client), and the whole machine (all of those and anything
    else running, the kernel's network work included); and
    `servers_free_ceiling`."""
    header = (
        f"{'convs':>6} | {'chatr servers':>13} {'postgres':>9} {'redis':>7} {'client':>7} "
        f"{'machine':>8} {'WAL B':>6} | {'baseline servers':>16} {'postgres':>9} {'redis':>7} "
        f"{'client':>7} {'machine':>8} {'WAL B':>6} | {'ceiling':>7}"
    )
    lines = ["CPU (ms) and PostgreSQL WAL (bytes) per send:", header, "-" * len(header)]
    for count in levels:
        cells = []
        for name, width in (("chatr", 13), ("baseline", 16)):
            level = results[count][name]
            sends = len(level.latencies) or 1
            cells.append(
                f"{level.cpu / sends * 1000:{width}.3f} {level.postgres_cpu / sends * 1000:9.3f} "
                f"{level.redis_cpu / sends * 1000:7.3f} {level.client_cpu / sends * 1000:7.3f} "
                f"{level.machine_cpu / sends * 1000:8.3f} "
                f"{level.wal_per_send():6.0f}"
            )
        ceiling = servers_free_ceiling(results[count]["chatr"], results[count]["baseline"])
        lines.append(f"{count:>6} | {cells[0]} | {cells[1]} | {ceiling:6.2f}x")
    lines.append(
        "(ceiling: the ratio chatr would reach if its servers cost per send what the "
        "baseline's do, the rest as measured; only meaningful where the cores are saturated)"
    )
    return "\n".join(lines)


# -- the database write path alone -------------------------------------------------------------


async def run_statements(
    connections: list[Any],
    send: Callable[[Any, int, int], Awaitable[None]],
    level: Level,
    args: argparse.Namespace,
    wal: WalPosition,
) -> None:
    """`send(connection, index, number)` back to back on every connection; the window as
    `run_round` counts it."""
    window_start = time.perf_counter() + args.warmup
    window_end = window_start + args.seconds

    async def wal_window() -> None:
        await asyncio.sleep(max(window_start - time.perf_counter(), 0))
        at_start = await wal.read()
        await asyncio.sleep(max(window_end - time.perf_counter(), 0))
        level.wal_bytes += await wal.read() - at_start

    async def loop(connection: Any, index: int) -> None:
        number = 0
        while (sent := time.perf_counter()) < window_end:
            await send(connection, index, number)
            answered = time.perf_counter()
            number += 1
            if window_start <= answered <= window_end:
                level.latencies.append(answered - sent)

    await asyncio.gather(wal_window(), *(loop(c, i) for i, c in enumerate(connections)))
    level.seconds += args.seconds


async def measure_statements(
    env: dict[str, str], seed: ChatrSeed, args: argparse.Namespace, wal: WalPosition
) -> dict[int, dict[str, Level]]:
    """chatr's one-statement send (its own compiled statement, on its own autocommit
    engine's connections, run on asyncpg directly as chatr does) against the baseline's
    transaction (UPDATE seq + INSERT, asyncpg), each from N connections, one conversation per
    connection: the persisted writes/s of the database work alone, without the servers' CPU.
    This is where a lock shared by all writers shows."""
    from chatr.db import create_engine
    from chatr.models.base import utcnow
    from chatr.services import send_statements
    from chatr.settings import load_settings

    # A pool as large as the largest level: every connection is held for a whole round.
    settings = load_settings(env).with_overrides(db_pool_size=max(args.statement_connections))
    engine = create_engine(settings, autocommit=True)
    try:  # (a tree from before the send ran on asyncpg directly has no Precompiled)
        from chatr.infra.precompiled import Precompiled

        direct: Any = Precompiled(
            send_statements.send_in_one_statement(with_mentions=False), engine.dialect
        )
    except ImportError:
        direct = None
    results: dict[int, dict[str, Level]] = {}
    tag = secrets.token_hex(3)
    client_ids = itertools.count()
    try:
        for count in args.statement_connections:
            results[count] = {"chatr": Level(), "baseline": Level()}

            async def chatr_send(connection: Any, index: int, number: int) -> None:
                stored = send_statements.StoredMessage(
                    seed.conversation_ids[index],
                    seed.user_ids[index],
                    f"db-{tag}-{next(client_ids)}",
                    f"m{number}",
                    utcnow(),
                )
                # (A tree from before the Core send statement bound the plain field names.)
                parameters = (
                    stored.parameters() if hasattr(stored, "parameters") else asdict(stored)
                )
                if direct is None:
                    await connection.execute(
                        send_statements.send_in_one_statement(with_mentions=False), parameters
                    )
                else:  # as chatr runs it: on the driver (chatr.infra.precompiled)
                    driver = (await connection.get_raw_connection()).driver_connection
                    await driver.fetchrow(direct.sql, *direct.arguments(parameters))

            async def baseline_send(connection: Any, index: int, number: int) -> None:
                async with connection.transaction():
                    seq = await connection.fetchval(NEXT_SEQ, index + 1)
                    await connection.fetchval(INSERT_MESSAGE, index + 1, seq, f"m{number}")

            for number in range(args.rounds):
                for name in ("chatr", "baseline") if number % 2 == 0 else ("baseline", "chatr"):
                    async with contextlib.AsyncExitStack() as stack:
                        if name == "chatr":
                            connections = [
                                await stack.enter_async_context(engine.connect())
                                for _ in range(count)
                            ]
                            send = chatr_send
                        else:
                            url = env["BASELINE_DATABASE_URL"]
                            connections = [await asyncpg.connect(url) for _ in range(count)]
                            for connection in connections:
                                stack.push_async_callback(connection.close)
                            send = baseline_send
                        await run_statements(connections, send, results[count][name], args, wal)
            chatr, base = results[count]["chatr"], results[count]["baseline"]
            print(
                f"  database only, {count} connections: chatr {chatr.rate:.0f}/s, "
                f"baseline {base.rate:.0f}/s",
                flush=True,
            )
    finally:
        await engine.dispose()
    return results


def report_statements(results: dict[int, dict[str, Level]]) -> str:
    header = (
        f"{'conns':>6} | {'chatr statement/s':>17} {'p50':>7} {'p99':>7} {'WAL B':>6} | "
        f"{'baseline txn/s':>14} {'p50':>7} {'p99':>7} {'WAL B':>6} | {'ratio':>6}"
    )
    lines = ["database write path alone (no HTTP, no GraphQL):", header, "-" * len(header)]
    for count, pair in results.items():
        chatr, base = pair["chatr"], pair["baseline"]
        ratio = chatr.rate / base.rate if base.rate else float("nan")
        lines.append(
            f"{count:>6} | {chatr.rate:17.0f} {percentile_ms(chatr.latencies, 50):7.1f} "
            f"{percentile_ms(chatr.latencies, 99):7.1f} {chatr.wal_per_send():6.0f} | "
            f"{base.rate:14.0f} {percentile_ms(base.latencies, 50):7.1f} "
            f"{percentile_ms(base.latencies, 99):7.1f} {base.wal_per_send():6.0f} | {ratio:5.2f}x"
        )
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


async def measure(
    stacks: list[StackUnderTest], levels: list[int], args: argparse.Namespace, wal: WalPosition
) -> dict[int, dict[str, Level]]:
    results: dict[int, dict[str, Level]] = {}
    for count in levels:
        results[count] = {stack.name: Level() for stack in stacks}
        for number in range(args.rounds):
            for stack in stacks if number % 2 == 0 else list(reversed(stacks)):
                # Opened per round: an idle keep-alive connection is closed by the server
                # (uvicorn: after 5 s) while the other stack runs its round.
                senders = await stack.senders(count)
                try:
                    await run_round(stack, senders, results[count][stack.name], args, wal)
                finally:
                    await asyncio.gather(*(s.connection.close() for s in senders))
        chatr, base = results[count]["chatr"], results[count]["baseline"]
        print(
            f"  {count} conversations: chatr {chatr.rate:.0f}/s, baseline {base.rate:.0f}/s",
            flush=True,
        )
    return results


async def run(args: argparse.Namespace) -> None:
    run_started = time.monotonic()
    tag = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix="chatr-throughput-"))
    largest = max([*args.conversations, *args.statement_connections])
    raise_open_files_limit(4 * largest + 1024)
    servers: list[Server] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, True)
        env = await prepare_environment(stack, args, tag, log_dir)
        # The same database connections per process as the baseline's pool (10): chatr's
        # autocommit pool, where sends run, holds up to twice CHATR_DB_POOL_SIZE.
        env["CHATR_DB_POOL_SIZE"] = str(BASELINE_POOL_SIZE // 2)
        if args.send_batch_concurrency is not None:
            env["CHATR_SEND_BATCH_CONCURRENCY"] = str(args.send_batch_concurrency)
        await create_baseline_conversations(env["BASELINE_DATABASE_URL"], largest)
        seed = await seed_chatr(env, largest)
        await analyze_database(env["DATABASE_URL"])
        print(
            f"seeded {largest} senders, each owning one group, through chatr's services in "
            f"{seed.seconds:.1f} s",
            flush=True,
        )
        for name, app in (
            ("chatr A", "chatr.asgi:app"),
            ("chatr B", "chatr.asgi:app"),
            ("baseline A", "bench.baseline_app:app"),
            ("baseline B", "bench.baseline_app:app"),
        ):
            server = start_server(name, app, env, log_dir)
            servers.append(server)
            stack.push_async_callback(server.stop)
        try:
            await asyncio.gather(*(wait_until_up(s) for s in servers))
            await asyncio.gather(*(wait_until_up(s, "/readyz") for s in servers[:2]))
            stacks = [chatr_stack(servers[:2], seed, tag), baseline_stack(servers[2:])]
            idle = await background_load()
            print(
                f"chatr throughput bench: levels {args.conversations}, {args.rounds} alternating "
                f"rounds of {args.warmup:g} s warm-up + {args.seconds:g} s measured per stack; "
                f"machine {idle * 100:.0f}% busy before start ({os.cpu_count()} cores)",
                flush=True,
            )
            busy0, total0 = machine_busy_seconds()
            wal_connection = await asyncpg.connect(env["BASELINE_DATABASE_URL"])
            stack.push_async_callback(wal_connection.close)
            wal = WalPosition(wal_connection)
            results = await measure(stacks, args.conversations, args, wal)
            busy1, total1 = machine_busy_seconds()
            print(report(args.conversations, results), flush=True)
            print(report_cpu(args.conversations, results), flush=True)
            statements = (
                await measure_statements(env, seed, args, wal) if args.statement_connections else {}
            )
        except BaseException:
            for server in servers:
                tail = server.log_tail()
                if tail:
                    print(f"--- {server.name} log (last lines) ---\n{tail}", file=sys.stderr)
            raise
    if statements:
        print(report_statements(statements))
    busy = (busy1 - busy0) / max(total1 - total0, 1e-9)
    print(
        f"machine busy during measurement: {busy * 100:.0f}% of {os.cpu_count()} cores "
        f"(servers, this client, PostgreSQL and Redis); load average now "
        f"{os.getloadavg()[0]:.2f}; whole run {time.monotonic() - run_started:.0f} s"
    )


def parse_levels(text: str) -> list[int]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("conversation counts must be positive integers")
    return levels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--conversations", type=parse_levels, default=[1, 10, 100, 1000], help="e.g. 1,10,100"
    )
    parser.add_argument(
        "--statement-connections",
        type=parse_levels,
        default=[1, 4, 16],
        help="database-only levels (connections; the cluster's max_connections is shared)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="discarded seconds per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per stack")
    parser.add_argument(
        "--send-batch-concurrency",
        type=int,
        help="chatr's CHATR_SEND_BATCH_CONCURRENCY for its servers (default: chatr's own)",
    )
    parser.add_argument("--postgres", default=PG_URL, help="server URL, no database")
    parser.add_argument("--redis", default=REDIS_URL)
    args = parser.parse_args(argv)
    if args.send_batch_concurrency is not None and args.send_batch_concurrency < 1:
        parser.error("--send-batch-concurrency must be at least 1")
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        parser.error("--seconds must be positive, --warmup not negative, --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_script(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
