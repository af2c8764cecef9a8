"""1:1 send-mutation -> subscriber-receive latency across two uvicorn processes (prints figures).

What it measures
    chatr: a sender posts `sendMessage(input: {conversationId, body, clientMessageId})` over
    HTTP (persistent keep-alive httpx client) to instance B (a first message by `recipientId`
    creates the conversation); a subscriber holds `conversationEvents(conversationId,
    afterSeq)` over a raw graphql-transport-ws socket on instance A. Latency is from just
    before the POST is issued to the arrival of the subscriber's `next` frame for that
    message (time.perf_counter, same process), one message in flight at a time. The mutation
    round trip (POST -> response) is reported on its own since it is part of the path.

    Baseline, measured in the same run with the same client code: bench/baseline_app.py, a
    bare starlette app (no GraphQL) whose `POST /send` takes the next seq and inserts the row in
    one PostgreSQL transaction (asyncpg) then PUBLISHes on Redis (redis-py), and whose `/ws`
    forwards that channel to the socket. Also two uvicorn processes: sender -> B, subscriber on A.

    Both stacks run side by side; after a warm-up (discarded) the measured messages are sent in
    rounds that alternate between chatr and the baseline, so machine noise hits both alike.
    Targets (chatr send -> receive): p50 <= 3 ms, p99 <= 8 ms. `msg/s` is the sequential rate
    (measured messages / wall time of their send -> receive loop). Server CPU per message is
    read from /proc for each uvicorn process.

How to run (from the project root)
    .venv/bin/python bench/latency.py [--messages N] [--warmup W] [--rounds R]

What it needs
    PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth; database `test` is used only to
    CREATE and DROP a fresh `chatr_bench_<random>` database) and Redis at 127.0.0.1:6379 (a
    unique channel prefix; nothing is written or flushed). Loopback only. Everything it starts
    (four uvicorn processes, each in its own process group, and the database) is stopped or
    dropped on exit, including Ctrl-C and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432"
ADMIN_DB = "test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "Bench-pass1"
TARGET_P50_MS = 3.0
TARGET_P99_MS = 8.0
STARTUP_TIMEOUT = 30.0
RECEIVE_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")

REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { accessToken user { id } }
}
"""
SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id seq conversationId }
}
"""
CONVERSATION_EVENTS = """
subscription Conversation($id: ID!, $afterSeq: Int) {
  conversationEvents(conversationId: $id, afterSeq: $afterSeq) {
    ... on MessagePostedEvent { message { seq body } }
  }
}
"""

# Last-resort cleanup (a second Ctrl-C during the orderly one): see main().
_live_processes: set[subprocess.Popen[bytes]] = set()
_live_databases: set[str] = set()


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc (0 when it is gone)."""
    try:
        return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


def stat_cpu_seconds(stat: str) -> float:
    """User + system CPU time from the text of a /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited in time."""
        try:
            if self.process.poll() is None:
                _signal_group(self.process, signal.SIGTERM)
                for _ in range(int(STOP_TIMEOUT / POLL_INTERVAL)):
                    if self.process.poll() is not None:
                        break
                    await asyncio.sleep(POLL_INTERVAL)
        finally:
            _kill_group(self.process)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever is left of the group and reap the leader (bounded)."""
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    _live_processes.discard(process)


def start_server(name: str, app: str, env: dict[str, str], log_dir: Path) -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--ws-per-message-deflate",
        "false",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log_path = log_dir / f"{name.replace(' ', '-')}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C is ours to handle
        )
    _live_processes.add(process)
    return Server(name, port, process, log_path)


async def wait_until_up(server: Server, path: str = "/healthz") -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(path)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name}: {path} not 200 after {STARTUP_TIMEOUT}s")


# -- database ----------------------------------------------------------------------------------


async def create_database(pg_url: str, name: str) -> None:
    admin = await asyncpg.connect(f"{pg_url}/{ADMIN_DB}", timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        _live_databases.add(name)
    finally:
        await admin.close()


async def drop_database(pg_url: str, name: str) -> None:
    admin = await asyncpg.connect(f"{pg_url}/{ADMIN_DB}", timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=30)
        _live_databases.discard(name)
    finally:
        await admin.close()


async def analyze_database(database_url: str) -> None:
    """Planner statistics for every table of the database, as autovacuum would gather them.

    A production cluster's autovacuum analyzes a table once ~50 rows of it changed; a
    cluster run with autovacuum off (this machine's) never does, and without statistics the
    planner took the send statement's conversation by reading every row of `conversations`
    (a sequential scan, one per statement: 1,000 rows after seeding 1,000 groups) instead of
    its primary key. Call it after seeding, before measuring."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await connection.execute("ANALYZE", timeout=120)
    finally:
        await connection.close()


async def migrate(env: dict[str, str]) -> None:
    chatr = Path(sys.executable).parent / "chatr"
    process = await asyncio.create_subprocess_exec(
        str(chatr),
        "migrate",
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"chatr migrate failed:\n{output.decode(errors='replace')}")


async def create_baseline_tables(database_url: str) -> int:
    """The baseline's two tables in the bench database, with one conversation; its id."""
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        await connection.execute(
            """
            CREATE TABLE bench_conversations (
                id bigint PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0
            );
            CREATE TABLE bench_messages (
                id bigserial PRIMARY KEY,
                conversation_id bigint NOT NULL REFERENCES bench_conversations (id),
                seq bigint NOT NULL,
                body text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (conversation_id, seq)
            );
            INSERT INTO bench_conversations (id) VALUES (1);
            """
        )
    finally:
        await connection.close()
    return 1


# -- clients -----------------------------------------------------------------------------------


async def post_json(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = await client.post(path, json=payload, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    if body.get("errors"):
        raise RuntimeError(f"POST {path}: {body['errors']}")
    return body


class Feed:
    """Arrival times of subscriber frames, keyed by message body."""

    def __init__(self) -> None:
        self._expected: dict[str, asyncio.Future[float]] = {}
        self.failure: BaseException | None = None

    def expect(self, key: str) -> asyncio.Future[float]:
        if self.failure is not None:
            raise RuntimeError("the subscription ended") from self.failure
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._expected[key] = future
        return future

    def arrived(self, key: str, at: float) -> None:
        future = self._expected.pop(key, None)
        if future is not None and not future.done():
            future.set_result(at)

    def fail(self, error: BaseException) -> None:
        self.failure = error
        for future in self._expected.values():
            if not future.done():
                future.set_exception(error)
        self._expected.clear()


Extract = Callable[[dict[str, Any]], str | None]


async def pump(socket_: ClientConnection, feed: Feed, extract: Extract) -> None:
    """Read frames until the socket closes; stamp each message's arrival first thing."""
    try:
        async for raw in socket_:
            at = time.perf_counter()
            frame = json.loads(raw)
            key = extract(frame)
            if key is not None:
                feed.arrived(key, at)
            elif frame.get("type") == "ping":
                await socket_.send(json.dumps({"type": "pong"}))
            elif frame.get("type") in ("error", "complete"):
                raise RuntimeError(f"subscription ended: {frame}")
        raise RuntimeError("the subscription socket closed")
    except Exception as error:
        feed.fail(error)


def chatr_body(frame: dict[str, Any]) -> str | None:
    if frame.get("type") != "next":
        return None
    payload = frame.get("payload") or {}
    if payload.get("errors"):
        raise RuntimeError(f"subscription error: {payload['errors']}")
    message = ((payload.get("data") or {}).get("conversationEvents") or {}).get("message")
    return message["body"] if message else None


def baseline_body(frame: dict[str, Any]) -> str | None:
    return frame.get("body")


async def open_socket(url: str, subprotocol: str | None = None) -> ClientConnection:
    return await connect(
        url,
        subprotocols=[subprotocol] if subprotocol else None,  # type: ignore[list-item]
        compression=None,
        open_timeout=10,
        close_timeout=2,
        ping_interval=None,
        max_size=2**20,
    )


async def receive_json(socket_: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket_.recv(), timeout=10))


# -- the two cases -----------------------------------------------------------------------------


@dataclass
class Case:
    """One stack under test: how to send a message; where its arrivals are stamped."""

    name: str
    post_path: str
    sender: Server
    subscriber: Server
    client: httpx.AsyncClient
    feed: Feed
    build_payload: Callable[[str, str], dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    e2e: list[float] = field(default_factory=list)
    rtt: list[float] = field(default_factory=list)
    wall: float = 0.0
    sender_cpu: float = 0.0
    subscriber_cpu: float = 0.0

    async def send_one(self, body: str, client_id: str) -> tuple[float, float]:
        """(send -> receive, POST round trip) in seconds, for one message."""
        arrival = self.feed.expect(body)
        payload = self.build_payload(body, client_id)
        try:
            started = time.perf_counter()
            await post_json(self.client, self.post_path, payload, self.headers)
            answered = time.perf_counter()
            received = await asyncio.wait_for(arrival, RECEIVE_TIMEOUT)
        finally:
            arrival.cancel()  # no-op once it arrived; else nobody waits for it any more
        return received - started, answered - started

    async def run(self, count: int, tag: str, first: int, *, record: bool) -> None:
        sender_cpu, subscriber_cpu = self.sender.cpu(), self.subscriber.cpu()
        started = time.perf_counter()
        for index in range(first, first + count):
            e2e, rtt = await self.send_one(f"{tag}-{self.name}-{index}", f"{tag}-{index}")
            if record:
                self.e2e.append(e2e)
                self.rtt.append(rtt)
        if record:
            self.wall += time.perf_counter() - started
            self.sender_cpu += self.sender.cpu() - sender_cpu
            self.subscriber_cpu += self.subscriber.cpu() - subscriber_cpu


async def register(client: httpx.AsyncClient, username: str) -> tuple[str, str]:
    """(user id, access token) of a new account."""
    variables = {
        "input": {"username": username, "password": PASSWORD, "email": f"{username}@example.com"}
    }
    body = await post_json(client, "/graphql", {"query": REGISTER, "variables": variables}, {})
    payload = body["data"]["register"]
    return payload["user"]["id"], payload["accessToken"]


async def subscribe_chatr(
    url: str, token: str, conversation_id: str, after_seq: int
) -> ClientConnection:
    socket_ = await open_socket(f"{url}/graphql", "graphql-transport-ws")
    try:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await socket_.send(json.dumps(init))
        ack = await receive_json(socket_)
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"expected connection_ack, got {ack}")
        variables = {"id": conversation_id, "afterSeq": after_seq}
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": CONVERSATION_EVENTS, "variables": variables},
        }
        await socket_.send(json.dumps(subscribe))
    except BaseException:
        await socket_.close()
        raise
    return socket_


async def subscribe_baseline(url: str, conversation_id: int) -> ClientConnection:
    socket_ = await open_socket(f"{url}/ws?conversation={conversation_id}")
    try:
        ready = await receive_json(socket_)
        if ready.get("type") != "ready":
            raise RuntimeError(f"expected ready, got {ready}")
    except BaseException:
        await socket_.close()
        raise
    return socket_


async def start_reader(
    stack: contextlib.AsyncExitStack, socket_: ClientConnection, extract: Extract
) -> Feed:
    """Pump the socket in the background until the stack unwinds (socket closed, task ended)."""
    feed = Feed()
    task = asyncio.create_task(pump(socket_, feed, extract))

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await socket_.close()

    stack.push_async_callback(stop)
    return feed


async def http_client(stack: contextlib.AsyncExitStack, server: Server) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=server.url, timeout=10)
    stack.push_async_callback(client.aclose)
    return client


async def setup_chatr(stack: contextlib.AsyncExitStack, a: Server, b: Server, tag: str) -> Case:
    setup = await http_client(stack, a)
    _, sender_token = await register(setup, f"bench_{tag}_s")
    recipient_id, recipient_token = await register(setup, f"bench_{tag}_r")
    client = await http_client(stack, b)
    headers = {"Authorization": f"Bearer {sender_token}"}
    first = {"recipientId": recipient_id, "body": "hello", "clientMessageId": f"{tag}-first"}
    request = {"query": SEND, "variables": {"input": first}}
    sent = await post_json(client, "/graphql", request, headers)
    conversation_id = sent["data"]["sendMessage"]["conversationId"]
    first_seq = sent["data"]["sendMessage"]["seq"]
    socket_ = await subscribe_chatr(a.ws_url, recipient_token, conversation_id, first_seq)
    feed = await start_reader(stack, socket_, chatr_body)

    def payload(body: str, client_id: str) -> dict[str, Any]:
        message = {"conversationId": conversation_id, "body": body, "clientMessageId": client_id}
        return {"query": SEND, "variables": {"input": message}}

    return Case("chatr", "/graphql", b, a, client, feed, payload, headers)


async def setup_baseline(
    stack: contextlib.AsyncExitStack, a: Server, b: Server, conversation_id: int
) -> Case:
    client = await http_client(stack, b)
    socket_ = await subscribe_baseline(a.ws_url, conversation_id)
    feed = await start_reader(stack, socket_, baseline_body)

    def payload(body: str, _client_id: str) -> dict[str, Any]:
        return {"conversationId": conversation_id, "body": body}

    return Case("baseline", "/send", b, a, client, feed, payload)


# -- statistics and output ---------------------------------------------------------------------


def summary(samples: list[float]) -> list[float]:
    """p50, p90, p99, max, mean in milliseconds."""
    ms = [s * 1000 for s in samples]
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return [cuts[49], cuts[89], cuts[98], max(ms), statistics.fmean(ms)]


def row(label: str, samples: list[float], rate: float | None) -> str:
    figures = "".join(f"{v:8.2f}" for v in summary(samples))
    rate_text = f"{rate:8.0f}" if rate is not None else f"{'-':>8}"
    return f"{label:<28}{len(samples):>6}{figures}{rate_text}"


def report(chatr: Case, baseline: Case) -> str:
    header = f"{'case':<28}{'n':>6}" + "".join(
        f"{h:>8}" for h in ("p50", "p90", "p99", "max", "mean", "msg/s")
    )
    chatr_e2e, base_e2e = summary(chatr.e2e), summary(baseline.e2e)
    p50_ok = chatr_e2e[0] <= TARGET_P50_MS
    p99_ok = chatr_e2e[2] <= TARGET_P99_MS
    lines = [
        header,
        row("chatr 1:1 send->receive", chatr.e2e, len(chatr.e2e) / chatr.wall),
        row("chatr mutation round trip", chatr.rtt, None),
        row("baseline send->receive", baseline.e2e, len(baseline.e2e) / baseline.wall),
        row("baseline POST round trip", baseline.rtt, None),
        f"ratio chatr/baseline p50: {chatr_e2e[0] / base_e2e[0]:.1f}x  "
        f"p99: {chatr_e2e[2] / base_e2e[2]:.1f}x",
        f"targets: p50 <= {TARGET_P50_MS:g} ms: {'PASS' if p50_ok else 'FAIL'}, "
        f"p99 <= {TARGET_P99_MS:g} ms: {'PASS' if p99_ok else 'FAIL'}",
    ]
    for case in (chatr, baseline):
        count = len(case.e2e)
        lines.append(
            f"server CPU per message, {case.name}: sender instance "
            f"{case.sender_cpu / count * 1000:.2f} ms, subscriber instance "
            f"{case.subscriber_cpu / count * 1000:.2f} ms"
        )
    return "\n".join(lines)


async def background_load(seconds: float = 1.0) -> float:
    """Busy fraction of the whole machine (all cores) over a short idle window."""
    busy0, total0 = machine_busy_seconds()
    await asyncio.sleep(seconds)
    busy1, total1 = machine_busy_seconds()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


# -- the run -----------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """This process's environment without any chatr/baseline configuration."""
    names = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
    return {
        k: v
        for k, v in os.environ.items()
        if k not in names and not k.startswith(("CHATR_", "BASELINE_"))
    }


def chunks(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def measure(chatr: Case, baseline: Case, args: argparse.Namespace, tag: str) -> float:
    """Warm up both, then alternate measured rounds; the machine's busy share meanwhile."""
    for case in (chatr, baseline):
        await case.run(args.warmup, f"{tag}w", 0, record=False)
    busy0, total0 = machine_busy_seconds()
    first = 0
    for number, count in enumerate(chunks(args.messages, args.rounds)):
        order = (chatr, baseline) if number % 2 == 0 else (baseline, chatr)
        for case in order:
            await case.run(count, tag, first, record=True)
        first += count
    busy1, total1 = machine_busy_seconds()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


async def prepare_environment(
    stack: contextlib.AsyncExitStack, args: argparse.Namespace, tag: str, log_dir: Path
) -> dict[str, str]:
    """A fresh, migrated `chatr_bench_<tag>` database (dropped when `stack` unwinds) and the
    environment every server of the run gets: chatr with production settings, the baseline
    on the same database, each with its own channel prefix."""
    database = f"chatr_bench_{tag}"
    database_url = f"{args.postgres}/{database}"
    await create_database(args.postgres, database)
    stack.push_async_callback(drop_database, args.postgres, database)
    env = base_env() | {
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis,
        "JWT_SECRET": secrets.token_urlsafe(48),
        "CHATR_CHANNEL_PREFIX": f"bench-{tag}",
        "CHATR_ENV": "production",
        # No mail server or SMS webhook here (production refuses to start without them).
        "CHATR_I_ACCEPT_UNDELIVERED_CODES": "1",
        # The per-user send guard stays on (its cost is measured) but cannot trip.
        "CHATR_SEND_MESSAGE_LIMIT": "1000000 per minute",
        "CHATR_ACCESS_TOKEN_TTL": "7200",
        # Every bench client connects from loopback (bench/fanout.py: 1,000 sockets): the
        # per-IP socket cap would refuse all but the first CHATR_MAX_SOCKETS_PER_IP.
        "CHATR_MAX_SOCKETS_PER_IP": "0",
        "CHATR_DATA_DIR": str(log_dir / "data"),
        "BASELINE_DATABASE_URL": database_url,
        "BASELINE_CHANNEL_PREFIX": f"bench-{tag}-baseline",
    }
    await migrate(env)
    return env


async def run(args: argparse.Namespace) -> None:
    tag = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix="chatr-bench-"))
    servers: list[Server] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, True)
        env = await prepare_environment(stack, args, tag, log_dir)
        conversation_id = await create_baseline_tables(env["BASELINE_DATABASE_URL"])
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
            chatr = await setup_chatr(stack, servers[0], servers[1], tag)
            baseline = await setup_baseline(stack, servers[2], servers[3], conversation_id)
            idle = await background_load()
            print_header(args, servers, idle)
            busy = await measure(chatr, baseline, args, tag)
        except BaseException:
            for server in servers:
                tail = server.log_tail()
                if tail:
                    print(f"--- {server.name} log (last lines) ---\n{tail}", file=sys.stderr)
            raise
    print(report(chatr, baseline))
    print(
        f"machine busy during measurement: {busy * 100:.0f}% of {os.cpu_count()} cores "
        f"(includes these servers, this client, PostgreSQL and Redis); "
        f"load average now {os.getloadavg()[0]:.2f}"
    )


def print_header(args: argparse.Namespace, servers: list[Server], idle: float) -> None:
    versions = ", ".join(
        f"{name} {version(name)}" for name in ("strawberry-graphql", "uvicorn", "redis")
    )
    pids = ", ".join(f"{s.name} pid {s.process.pid} :{s.port}" for s in servers)
    print(
        f"chatr latency bench: {args.messages} messages in {args.rounds} alternating rounds "
        f"after {args.warmup} warm-up each; Python {sys.version.split()[0]}, {versions}"
    )
    print(f"servers: {pids}")
    print(
        f"before start: machine {idle * 100:.0f}% busy over 1 s ({os.cpu_count()} cores), "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000, help="measured messages per case")
    parser.add_argument("--warmup", type=int, default=200, help="discarded messages per case")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per case")
    parser.add_argument("--postgres", default=PG_URL, help="server URL, no database")
    parser.add_argument("--redis", default=REDIS_URL)
    args = parser.parse_args(argv)
    if args.messages < 2 or args.warmup < 0:
        parser.error("--messages must be at least 2 and --warmup not negative")
    return args


async def run_until_signalled(
    run: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace
) -> None:
    """`run(args)`, cancelled by SIGINT or SIGTERM (also when started with SIGINT ignored, &)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    await run(args)


def run_script(
    run: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace
) -> int:
    """Every bench's entry: `run(args)` until done or signalled, leftovers cleaned up after."""
    try:
        asyncio.run(run_until_signalled(run, args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        last_resort_cleanup(getattr(args, "postgres", ""))
    return 0


def last_resort_cleanup(postgres: str) -> None:
    """Only reached with leftovers when the orderly cleanup itself was interrupted."""
    for process in list(_live_processes):
        _kill_group(process)
    for name in list(_live_databases):
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(drop_database(postgres, name), timeout=30))
        if name in _live_databases:
            print(f"could not drop database {name}; drop it by hand", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    return run_script(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
