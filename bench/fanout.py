"""Group fan-out: one message to a 1,000-member group, 1,000 live subscriptions (prints figures).

What it measures
    chatr: ONE uvicorn chatr instance (PostgreSQL + Redis, production settings). A group of
    `--members` accepted members (owner + the rest) is seeded through chatr's own services
    (`users.create` with one argon2 hash computed once and reused, `groups.create` inviting
    everyone, `groups.accept_invite` for each invitee, `auth.start_session` for each member's
    access token), so the rows, roles, SYSTEM messages and counters are the ones the API would
    make. Every member holds one graphql-transport-ws socket on the instance with one
    subscription: `myEvents` (default: what an app uses, every conversation on one socket) or
    `conversationEvents(conversationId)` (`--subscription conversationEvents`), selecting
    `{ __typename cursor ... on MessagePostedEvent { message { id seq body sender { id
    username displayName } } } }`. The owner posts `sendMessage(input: {conversationId, body,
    clientMessageId})` over HTTP (keep-alive httpx client, this process) to the same instance;
    the owner's own socket is one of the recipients, like a second device.

    Baseline, same run, same client code: bench/fanout_baseline_app.py, a bare starlette app (no
    GraphQL, no per-subscriber database work): one Redis pattern subscription per process, and
    each published message is sent as the same text to every connected socket of the
    conversation. Its send is `POST /send`, which takes the next seq and inserts the row in one
    PostgreSQL transaction and then PUBLISHes (bench/baseline_app.py's handler): chatr's send
    persists too, so the first recipient is compared like for like; the fan-out after the
    publish, the part under test, is the same either way.

    The sockets live in `--client-processes` client processes (this script with `--worker`;
    each holds its share of both stacks' sockets), so the clients are not what is measured.
    They speak a minimal WebSocket client on asyncio.Protocol (uvloop when installed) and stamp
    each frame with time.monotonic() as it is read; the sender stamps time.monotonic() just
    before the POST (one system-wide clock, comparable across processes). Per message:
    first recipient = earliest arrival - send, last recipient = latest arrival - send. One
    message in flight at a time: the next is sent once every socket has it, or after
    `--timeout` seconds (then it counts as a miss: some recipient did not get it).

    Before measuring, messages are sent until one reaches every socket (so every
    subscription is live), then `--warmup` messages per stack are discarded. The measured
    messages are sent in `--rounds` rounds that alternate between chatr and the baseline, so
    machine noise hits both alike. Server CPU per delivery = utime + stime of the uvicorn
    process (/proc/<pid>/stat) over the measured rounds / (messages x recipients); it includes
    the send itself (~1.5 ms per chatr mutation, ~1.5 us once divided by 1,000). Client CPU
    per delivery (all client processes) is printed too, as a check on the clients.
    Targets (chatr): last recipient p99 <= 80 ms, server CPU <= 20 us per delivery.

How to run (from the project root)
    .venv/bin/python bench/fanout.py [--members 1000] [--messages 150] [--warmup 5]
        [--rounds 3] [--client-processes 4] [--subscription myEvents|conversationEvents]
        [--timeout 30]
    Try `--members 50` first. At 1,000 members a run takes 0.5-2 minutes: seeding ~10 s,
    then each message waits for its last recipient (more when chatr delivers slowly). 150
    messages per stack by default, so that p99 is not simply the maximum and the CPU window
    (a few seconds) is not swayed by one periodic task.

What it needs
    PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth; database `test` is used only to
    CREATE and DROP a fresh `chatr_bench_<random>` database) and Redis at 127.0.0.1:6379 (a
    unique channel prefix; nothing is flushed). Loopback only. It raises its own open-files
    limit (RLIMIT_NOFILE) to the hard limit when 2 x members sockets need it. Everything it
    starts (two uvicorn processes and the client processes, each in its own process group,
    and the database) is stopped or dropped on exit, including Ctrl-C and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/fanout.py`
    sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    CLK_TCK,
    PG_URL,
    REDIS_URL,
    Server,
    background_load,
    chunks,
    cpu_seconds,
    create_baseline_tables,
    last_resort_cleanup,
    machine_busy_seconds,
    post_json,
    prepare_environment,
    run_until_signalled,
    start_server,
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

TARGET_LAST_P99_MS = 80.0
TARGET_CPU_US = 20.0
#: `groups.MAX_MEMBERS`: accepted and invited together.
MAX_MEMBERS = 1000
CONNECT_CONCURRENCY = 25
CONNECT_TIMEOUT = 60.0
READY_TIMEOUT = 4 * CONNECT_TIMEOUT
PRIME_ATTEMPTS = 10
FLUSH_TIMEOUT = 10.0
WORKER_STOP_TIMEOUT = 10.0
#: Per client process; the rest are only counted.
MAX_PROBLEMS_SENT = 20
#: After a round, before reading CPU: lets the server finish what the last message started.
SETTLE_SECONDS = 0.2

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id seq }
}
"""
SELECTION = """{
    __typename
    cursor
    ... on MessagePostedEvent { message { id seq body sender { id username displayName } } }
  }"""
SUBSCRIPTIONS = {
    "myEvents": f"subscription Fanout {{\n  myEvents {SELECTION}\n}}",
    "conversationEvents": (
        f"subscription Fanout($id: ID!) {{\n  conversationEvents(conversationId: $id) "
        f"{SELECTION}\n}}"
    ),
}

# Client process groups still running, for the last-resort cleanup (see main()).
_live_workers: set[int] = set()

T = TypeVar("T")


# =============================================================================================
# Client processes (`--worker`): hold sockets, stamp arrivals, report per message
# =============================================================================================

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Peer(asyncio.Protocol):
    """One client WebSocket: just enough RFC 6455 for this bench, on a bare asyncio.Protocol.

    The `websockets` client costs several times more CPU per frame (a task wake-up and a
    frame assembler per message); with hundreds of sockets per process that would queue the
    later sockets' frames behind the earlier ones and inflate "last recipient" for both stacks.
    Server frames are small, unmasked and unfragmented in practice; fragments, pings and close
    frames are still handled.
    """

    def __init__(
        self,
        stack: str,
        host: str,
        port: int,
        path: str,
        subprotocol: str | None,
        on_text: Callable[[Peer, bytes, float], None],
        on_lost: Callable[[Peer], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.stack = stack
        self.on_text = on_text
        self.on_lost = on_lost
        self.opened: asyncio.Future[None] = loop.create_future()
        #: Set by the stack's handler: connection_ack (chatr) or {"type": "ready"} (baseline).
        self.ready: asyncio.Future[None] = loop.create_future()
        self.seen: set[str] = set()
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] | None = None
        key = base64.b64encode(os.urandom(16)).decode()
        self._accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()  # first thing: the arrival stamp of every frame in this read
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            del buffer[: end + 4]
            status, *headers = head.split("\r\n")
            accept = next(
                (
                    value.strip().encode()
                    for name, _, value in (h.partition(":") for h in headers)
                    if name.strip().lower() == "sec-websocket-accept"
                ),
                None,
            )
            if status.split(" ", 2)[1:2] != ["101"] or accept != self._accept:
                self._fail_open(RuntimeError(f"WebSocket upgrade refused: {status}"))
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._read_frames(at)

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"socket closed (code {self.close_code})")
        self._fail_open(error)
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: open_peer raises it if it still waits
        self.on_lost(self)

    # -- frames --

    def _read_frames(self, at: float) -> None:
        buffer = self._buffer
        size = len(buffer)
        position = 0
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            if second & 0x80:  # servers never mask
                self.close()
                return
            end = position + header + length
            if end > size:
                break
            payload = bytes(buffer[position + header : end])
            position = end
            self._frame(bool(first & 0x80), first & 0x0F, payload, at)
        if position:
            del buffer[:position]

    def _frame(self, fin: bool, opcode: int, payload: bytes, at: float) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.on_text(self, payload, at)
            else:
                self._fragments = [payload]
        elif opcode == OP_CONTINUATION and self._fragments is not None:
            self._fragments.append(payload)
            if fin:
                whole, self._fragments = b"".join(self._fragments), None
                self.on_text(self, whole, at)
        elif opcode == OP_PING:
            self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._send(OP_CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        key = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        self.transport.write(header + mask + masked)

    def send_json(self, value: object) -> None:
        self._send(OP_TEXT, json.dumps(value).encode())

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send(OP_CLOSE, (1000).to_bytes(2, "big"))
            self.transport.close()

    def _fail_open(self, error: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
            self.opened.exception()  # retrieved: open_peer raises it if it still waits
            if self.transport is not None:
                self.transport.close()


class Collector:
    """Per message (keyed by its body): how many of this process's sockets have it, and
    the first and last arrival. Reports a message to the parent as soon as all have it."""

    def __init__(self, expected: dict[str, int], field_name: str) -> None:
        self.expected = expected
        self.field_name = field_name
        self.stats: dict[str, list[float]] = {}  # key -> [count, first, last]
        self.done: set[str] = set()
        self.duplicates = 0
        self.late = 0
        self.problems = 0
        #: Text frames received and their payload bytes, per stack (for the final check).
        self.frames = dict.fromkeys(expected, 0)
        self.bytes = dict.fromkeys(expected, 0)
        self.stopping = False

    # -- output to the parent --

    @staticmethod
    def emit(event: dict[str, Any]) -> None:
        sys.stdout.buffer.write(json.dumps(event).encode() + b"\n")
        sys.stdout.buffer.flush()

    def problem(self, detail: str) -> None:
        """Tell the parent (the first few verbatim: one per frame could flood it)."""
        self.problems += 1
        if self.problems <= MAX_PROBLEMS_SENT:
            self.emit({"event": "problem", "detail": detail[:500]})

    def _report(self, event: str, key: str) -> None:
        count, first, last = self.stats.pop(key, (0, None, None))
        self.done.add(key)
        self.emit({"event": event, "key": key, "n": int(count), "first": first, "last": last})

    def flush(self, key: str) -> None:
        """The parent gave up waiting: report what arrived so far (nothing if reported)."""
        if key in self.done:
            self.emit({"event": "flushed", "key": key, "n": 0, "first": None, "last": None})
        else:
            self._report("flushed", key)

    # -- arrivals --

    def arrived(self, peer: Peer, key: str, at: float) -> None:
        if key in peer.seen:
            self.duplicates += 1
            return
        peer.seen.add(key)
        if key in self.done:
            self.late += 1
            return
        entry = self.stats.get(key)
        if entry is None:
            self.stats[key] = entry = [1, at, at]
        else:
            entry[0] += 1
            entry[1] = min(entry[1], at)
            entry[2] = max(entry[2], at)
        if entry[0] >= self.expected[peer.stack]:
            self._report("arrived", key)

    def on_chatr_text(self, peer: Peer, raw: bytes, at: float) -> None:
        self.frames["chatr"] += 1
        self.bytes["chatr"] += len(raw)
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "next":
            payload = frame.get("payload") or {}
            if payload.get("errors"):
                self.problem(f"chatr subscription error: {payload['errors']}")
            event = (payload.get("data") or {}).get(self.field_name) or {}
            message = event.get("message")
            if message is not None:
                self.arrived(peer, message["body"], at)
        elif kind == "connection_ack":
            if not peer.ready.done():
                peer.ready.set_result(None)
        elif kind == "ping":
            peer.send_json({"type": "pong"})
        elif kind in ("error", "complete"):
            self.problem(f"chatr subscription ended: {frame}")

    def on_baseline_text(self, peer: Peer, raw: bytes, at: float) -> None:
        self.frames["baseline"] += 1
        self.bytes["baseline"] += len(raw)
        frame = json.loads(raw)
        body = frame.get("body")
        if body is not None:
            self.arrived(peer, body, at)
        elif frame.get("type") == "ready" and not peer.ready.done():
            peer.ready.set_result(None)

    def on_lost(self, peer: Peer) -> None:
        if not self.stopping and peer.opened.done() and not peer.opened.exception():
            self.problem(f"{peer.stack} socket closed by the server (code {peer.close_code})")


async def open_peer(
    collector: Collector,
    semaphore: asyncio.Semaphore,
    stack: str,
    host: str,
    port: int,
    path: str,
    subprotocol: str | None,
    start: Callable[[Peer], None] | None = None,
    after_ready: Callable[[Peer], None] | None = None,
) -> Peer:
    """Connect, upgrade, run the stack's opening (`start`), wait for its ready signal."""
    loop = asyncio.get_running_loop()
    on_text = collector.on_chatr_text if stack == "chatr" else collector.on_baseline_text
    step = "connect"
    try:
        async with semaphore, asyncio.timeout(CONNECT_TIMEOUT):
            _, peer = await loop.create_connection(
                lambda: Peer(stack, host, port, path, subprotocol, on_text, collector.on_lost),
                host,
                port,
            )
            step = "WebSocket upgrade"
            await peer.opened
            if start is not None:
                start(peer)
            step = "connection_ack" if stack == "chatr" else "ready frame"
            await peer.ready
            if after_ready is not None:
                after_ready(peer)
    except TimeoutError:
        raise RuntimeError(f"{stack} socket: no {step} within {CONNECT_TIMEOUT:g} s") from None
    return peer


async def worker_main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    config = json.loads(await commands.readline())
    host = config["host"]
    tokens: list[str] = config["tokens"]
    field_name = config["subscription"]
    collector = Collector({"chatr": len(tokens), "baseline": config["baseline"]}, field_name)
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": SUBSCRIPTIONS[field_name], "variables": config["variables"]},
    }
    semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)
    started = time.monotonic()

    def opener(token: str) -> Callable[[Peer], None]:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        return lambda peer: peer.send_json(init)

    chatr = [
        open_peer(
            collector,
            semaphore,
            "chatr",
            host,
            config["chatr_port"],
            "/graphql",
            "graphql-transport-ws",
            start=opener(token),
            after_ready=lambda peer: peer.send_json(subscribe),
        )
        for token in tokens
    ]
    baseline = [
        open_peer(
            collector,
            semaphore,
            "baseline",
            host,
            config["baseline_port"],
            f"/ws?conversation={config['baseline_conversation']}",
            None,
        )
        for _ in range(config["baseline"])
    ]

    async def follow_commands() -> None:
        """Until "stop" or EOF (the parent is gone or cleaning up)."""
        while line := await commands.readline():
            command = json.loads(line)
            if command["cmd"] == "flush":
                collector.flush(command["key"])
            elif command["cmd"] == "stop":
                return

    commander = asyncio.create_task(follow_commands())
    opening = asyncio.ensure_future(asyncio.gather(*chatr, *baseline))
    racing: list[asyncio.Future[Any]] = [opening, commander]
    await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    if not opening.done():  # told to stop while still opening: the exit closes the sockets
        opening.cancel()
        return
    if opening.exception() is not None:
        collector.problem(f"opening sockets failed: {opening.exception()!r}")
        commander.cancel()
        raise opening.exception()  # type: ignore[misc]
    peers: list[Peer] = opening.result()
    collector.emit({"event": "ready", "seconds": time.monotonic() - started})
    try:
        await commander
    finally:
        collector.stopping = True
        collector.emit(
            {
                "event": "status",
                "duplicates": collector.duplicates,
                "late": collector.late,
                "problems": collector.problems,
                "frames": collector.frames,
                "bytes": collector.bytes,
            }
        )
        for peer in peers:
            peer.close()
        await asyncio.sleep(0.2)  # let the close frames go out


def run_worker() -> int:
    try:
        import uvloop
    except ImportError:
        asyncio.run(worker_main())
    else:
        uvloop.run(worker_main())
    return 0


# =============================================================================================
# The parent: seeding, servers, client processes, sending, figures
# =============================================================================================


@dataclass
class Seed:
    conversation_id: int
    #: Access tokens, the owner's first.
    tokens: list[str]
    seconds: float


async def seed_chatr(env: dict[str, str], members: int) -> Seed:
    """Members, the group and one session each, through chatr's services (see docstring)."""
    from chatr.services import groups

    started = time.monotonic()
    async with seeding_runtime(env) as rt:
        accounts = await create_users(
            rt, members, username="fan_{:04d}", display_name="Fan-out member {}"
        )
        owner, *others = accounts
        group = await groups.create(
            rt,
            creator_id=owner.id,
            name="Fan-out bench",
            invitee_ids=[user.id for user in others],
        )
        await bounded(
            (
                groups.accept_invite(rt, viewer_id=user.id, conversation_id=group.id)
                for user in others
            ),
            SEED_CONCURRENCY,
        )
        tokens = await access_tokens(rt, accounts, device_label="bench/fanout.py")
    return Seed(group.id, tokens, time.monotonic() - started)


def raise_open_files_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard == resource.RLIM_INFINITY:
            soft = needed
        elif hard < needed:
            raise RuntimeError(f"RLIMIT_NOFILE hard limit {hard} < {needed} needed")
        else:
            soft = hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


@dataclass
class Tally:
    """One message's arrivals, summed over the client processes."""

    stack: str
    expected: int
    workers: int
    done: asyncio.Future[None]
    flushed_all: asyncio.Future[None]
    n: int = 0
    first: float = math.inf
    last: float = -math.inf
    flushed: int = 0

    def add(self, report: dict[str, Any]) -> None:
        if report["n"]:
            self.n += report["n"]
            self.first = min(self.first, report["first"])
            self.last = max(self.last, report["last"])
        if self.n >= self.expected and not self.done.done():
            self.done.set_result(None)


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    chatr: int
    baseline: int
    ready: asyncio.Future[float]
    stopped: asyncio.Future[dict[str, Any]]
    reader: asyncio.Task[None] | None = None

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    async def command(self, value: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(value).encode() + b"\n")
        await self.process.stdin.drain()


class Fleet:
    """The client processes and the messages awaited from them."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []
        self.tallies: dict[str, Tally] = {}
        self.problems: list[str] = []

    async def start(
        self,
        stack: contextlib.AsyncExitStack,
        *,
        processes: int,
        tokens: list[str],
        config: dict[str, Any],
        log_dir: Path,
    ) -> None:
        loop = asyncio.get_running_loop()
        stack.push_async_callback(self.close)
        offset = 0
        for number, share in enumerate(chunks(len(tokens), processes)):
            log = (log_dir / f"client-{number}.log").open("wb")
            stack.callback(log.close)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--worker",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # its own process group: Ctrl-C is ours to handle
                limit=1 << 20,
            )
            _live_workers.add(process.pid)
            worker = Worker(process, share, share, loop.create_future(), loop.create_future())
            self.workers.append(worker)
            worker.reader = asyncio.create_task(self._read(worker))
            mine = tokens[offset : offset + share]
            offset += share
            await worker.command(config | {"tokens": mine, "baseline": share})

    async def wait_ready(self) -> float:
        """Seconds the slowest client process took to open its sockets."""
        async with asyncio.timeout(READY_TIMEOUT):
            return max(await asyncio.gather(*(w.ready for w in self.workers)))

    async def _read(self, worker: Worker) -> None:
        assert worker.process.stdout is not None
        while line := await worker.process.stdout.readline():
            report = json.loads(line)
            event = report["event"]
            if event in ("arrived", "flushed"):
                tally = self.tallies.get(report["key"])
                if tally is None:
                    continue
                tally.add(report)
                if event == "flushed":
                    tally.flushed += 1
                    if tally.flushed >= tally.workers and not tally.flushed_all.done():
                        tally.flushed_all.set_result(None)
            elif event == "ready":
                worker.ready.set_result(report["seconds"])
            elif event == "problem":
                self.problems.append(report["detail"])
            elif event == "status" and not worker.stopped.done():
                worker.stopped.set_result(report)
        error = RuntimeError(f"client process {worker.process.pid} exited early")
        for future in (worker.ready, worker.stopped):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: only the waiter cares

    def expect(self, key: str, stack: str) -> Tally:
        loop = asyncio.get_running_loop()
        expected = sum(getattr(w, stack) for w in self.workers)
        futures = loop.create_future(), loop.create_future()
        tally = Tally(stack, expected, len(self.workers), *futures)
        self.tallies[key] = tally
        return tally

    async def settle(self, key: str, tally: Tally, patience: float) -> None:
        """Wait for every socket to have the message, else collect what arrived."""
        try:
            try:
                await asyncio.wait_for(asyncio.shield(tally.done), patience)
            except TimeoutError:
                for worker in self.workers:
                    await worker.command({"cmd": "flush", "key": key})
                await asyncio.wait_for(asyncio.shield(tally.flushed_all), FLUSH_TIMEOUT)
        finally:
            self.tallies.pop(key, None)

    def cpu(self) -> float:
        return sum(w.cpu() for w in self.workers)

    async def stop_all(self) -> list[dict[str, Any]]:
        """Ask each client to close its sockets; their duplicate and late-arrival counts."""
        statuses = []
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await worker.command({"cmd": "stop"})
        for worker in self.workers:
            with contextlib.suppress(Exception):
                statuses.append(await asyncio.wait_for(worker.stopped, WORKER_STOP_TIMEOUT))
        return statuses

    async def close(self) -> None:
        """Stop every client process at once (each closes its sockets on stdin EOF)."""
        await asyncio.gather(*(self._stop(w) for w in self.workers), return_exceptions=True)

    async def _stop(self, worker: Worker) -> None:
        process = worker.process
        try:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(Exception):
                    process.stdin.close()  # EOF: the client closes its sockets and exits
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), WORKER_STOP_TIMEOUT)
        finally:
            _kill_worker_group(process.pid)
            if process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 5)
            if worker.reader is not None:
                worker.reader.cancel()


def _kill_worker_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _live_workers.discard(pid)


@dataclass
class Stack:
    """One stack under test: how to send a message, and what was measured."""

    name: str
    server: Server
    client: httpx.AsyncClient
    post_path: str
    build_payload: Callable[[str, str], dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    rtt: list[float] = field(default_factory=list)
    #: Every message sent, priming and warm-up included (for the frame count).
    sent: int = 0
    misses: int = 0
    missing_deliveries: int = 0
    messages: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    wall: float = 0.0

    async def send_one(self, fleet: Fleet, key: str, client_id: str, patience: float) -> Tally:
        tally = fleet.expect(key, self.name)
        payload = self.build_payload(key, client_id)
        sent = time.monotonic()
        await post_json(self.client, self.post_path, payload, self.headers)
        answered = time.monotonic()
        await fleet.settle(key, tally, patience)
        tally.first -= sent
        tally.last -= sent
        self.rtt.append(answered - sent)
        self.sent += 1
        return tally

    async def prime(self, fleet: Fleet, tag: str, patience: float) -> int:
        """Send until one message reaches every socket: all subscriptions are live."""
        for attempt in range(1, PRIME_ATTEMPTS + 1):
            key = f"{tag}-prime-{self.name}-{attempt}"
            tally = await self.send_one(fleet, key, key, patience)
            if tally.n >= tally.expected:
                self.rtt.clear()
                return attempt
            print(
                f"  {self.name}: priming message {attempt} reached {tally.n}/{tally.expected}",
                flush=True,
            )
            if fleet.problems:
                break
            await asyncio.sleep(1)
        problems = "\n".join(fleet.problems[:10])
        raise RuntimeError(f"{self.name}: subscriptions never all live\n{problems}")

    async def run(
        self, fleet: Fleet, tag: str, first: int, count: int, patience: float, *, record: bool
    ) -> None:
        server_cpu, client_cpu = self.server.cpu(), fleet.cpu()
        started = time.monotonic()
        for index in range(first, first + count):
            key = f"{tag}-{self.name}-{index}"
            tally = await self.send_one(fleet, key, key, patience)
            if not record:
                continue
            self.messages += 1
            if tally.n < tally.expected:
                self.misses += 1
                self.missing_deliveries += tally.expected - tally.n
            if tally.n:
                self.first.append(tally.first)
                self.last.append(tally.last)
        if record:
            self.wall += time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
            self.server_cpu += self.server.cpu() - server_cpu
            self.client_cpu += fleet.cpu() - client_cpu
        else:
            self.rtt.clear()


# -- statistics and output ---------------------------------------------------------------------


def percentile(samples: list[float], q: int) -> float:
    """The q-th percentile in milliseconds (inclusive method, as bench/latency.py)."""
    if not samples:
        return math.nan
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles([s * 1000 for s in samples], n=100, method="inclusive")[q - 1]


def figures(stack: Stack, recipients: int) -> dict[str, float]:
    deliveries = max(stack.messages * recipients, 1)
    return {
        "first50": percentile(stack.first, 50),
        "first99": percentile(stack.first, 99),
        "last50": percentile(stack.last, 50),
        "last99": percentile(stack.last, 99),
        "cpu": stack.server_cpu / deliveries * 1e6,
        "client": stack.client_cpu / deliveries * 1e6,
        "rtt50": percentile(stack.rtt, 50),
    }


def report(chatr: Stack, baseline: Stack, recipients: int) -> str:
    names = (
        "first p50",
        "first p99",
        "last p50",
        "last p99",
        "CPU us/dlv",
        "misses",
        "POST p50",
        "client us/dlv",
    )
    header = f"{'case':<10}{'msgs':>6}" + "".join(f"{n:>14}" for n in names)
    lines = [header]
    results = {}
    for stack in (chatr, baseline):
        values = results[stack.name] = figures(stack, recipients)
        lines.append(
            f"{stack.name:<10}{stack.messages:>6}"
            + "".join(f"{values[k]:>11.2f} ms" for k in ("first50", "first99", "last50", "last99"))
            + f"{values['cpu']:>11.1f} us"
            + f"{stack.misses:>14}"
            + f"{values['rtt50']:>11.2f} ms"
            + f"{values['client']:>11.1f} us"
        )
    mine, base = results["chatr"], results["baseline"]

    def ratio(key: str) -> str:
        return f"{mine[key] / base[key]:.1f}x" if base[key] > 0 else "-"

    lines.append(
        f"ratio chatr/baseline: first p50 {ratio('first50')}, first p99 {ratio('first99')}, "
        f"last p50 {ratio('last50')}, last p99 {ratio('last99')}, CPU per delivery {ratio('cpu')}"
    )
    last_ok = mine["last99"] <= TARGET_LAST_P99_MS and chatr.misses == 0
    cpu_ok = mine["cpu"] <= TARGET_CPU_US
    lines.append(
        f"targets (chatr): last recipient p99 <= {TARGET_LAST_P99_MS:g} ms: "
        f"{'PASS' if last_ok else 'MISS'} ({mine['last99']:.1f} ms); "
        f"server CPU <= {TARGET_CPU_US:g} us per delivery: {'PASS' if cpu_ok else 'MISS'} "
        f"({mine['cpu']:.1f} us); messages some recipient missed: {chatr.misses} "
        f"({'PASS' if chatr.misses == 0 else 'MISS'})"
    )
    for stack in (chatr, baseline):
        if stack.messages:
            lines.append(
                f"{stack.name}: {stack.messages * recipients / stack.wall:,.0f} deliveries/s "
                f"one message at a time; {stack.missing_deliveries} deliveries missing"
            )
    deliveries = max(chatr.messages * recipients, 1)
    lines.append(
        f"p99 is of {len(chatr.last)} samples per stack (near the maximum); CPU per delivery "
        f"resolves to {1e6 / CLK_TCK / deliveries:.2f} us (/proc counts {1000 / CLK_TCK:g} ms "
        f"ticks) and includes the send itself; client us/dlv = all client processes"
    )
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------


async def measure(chatr: Stack, baseline: Stack, fleet: Fleet, args: argparse.Namespace) -> float:
    """Warm up both, then alternate measured rounds; the machine's busy share meanwhile."""
    tag = secrets.token_hex(3)
    for case in (chatr, baseline):
        await case.run(fleet, f"{tag}w", 0, args.warmup, args.timeout, record=False)
    busy0, total0 = machine_busy_seconds()
    first = 0
    for number, count in enumerate(chunks(args.messages, args.rounds)):
        order = (chatr, baseline) if number % 2 == 0 else (baseline, chatr)
        for case in order:
            await case.run(fleet, tag, first, count, args.timeout, record=True)
        first += count
    busy1, total1 = machine_busy_seconds()
    return (busy1 - busy0) / max(total1 - total0, 1e-9)


async def run(args: argparse.Namespace) -> None:
    run_started = time.monotonic()
    tag = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix="chatr-fanout-"))
    files = raise_open_files_limit(2 * args.members + 1024)
    servers: list[Server] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, True)
        # The same database, settings and channel prefixes as bench/latency.py.
        env = await prepare_environment(stack, args, tag, log_dir)
        baseline_conversation = await create_baseline_tables(env["BASELINE_DATABASE_URL"])
        seed = await seed_chatr(env, args.members)
        print(
            f"seeded {args.members} members, group {seed.conversation_id} and "
            f"{len(seed.tokens)} sessions through chatr's services in {seed.seconds:.1f} s",
            flush=True,
        )
        for name, app in (
            ("chatr", "chatr.asgi:app"),
            ("baseline", "bench.fanout_baseline_app:app"),
        ):
            server = start_server(name, app, env, log_dir)
            servers.append(server)
            stack.push_async_callback(server.stop)
        fleet = Fleet()
        try:
            await asyncio.gather(*(wait_until_up(s) for s in servers))
            await wait_until_up(servers[0], "/readyz")
            variables = (
                {"id": encode(Kind.CONVERSATION, seed.conversation_id)}
                if args.subscription == "conversationEvents"
                else {}
            )
            config = {
                "host": "127.0.0.1",
                "chatr_port": servers[0].port,
                "baseline_port": servers[1].port,
                "baseline_conversation": baseline_conversation,
                "subscription": args.subscription,
                "variables": variables,
            }
            await fleet.start(
                stack,
                processes=args.client_processes,
                tokens=seed.tokens,
                config=config,
                log_dir=log_dir,
            )
            opened = await fleet.wait_ready()
            print(
                f"{2 * args.members} sockets open in {opened:.1f} s "
                f"({args.client_processes} client processes)",
                flush=True,
            )
            chatr = await chatr_stack(stack, servers[0], seed)
            baseline = await baseline_stack(stack, servers[1], baseline_conversation)
            for case in (chatr, baseline):
                attempts = await case.prime(fleet, tag, args.timeout)
                print(f"  {case.name}: every subscription live (priming messages: {attempts})")
            idle = await background_load()
            print_header(args, servers, fleet, idle, files)
            busy = await measure(chatr, baseline, fleet, args)
            statuses = await fleet.stop_all()
        except BaseException:
            for server in servers:
                tail = server.log_tail()
                if tail:
                    print(f"--- {server.name} log (last lines) ---\n{tail}", file=sys.stderr)
            if fleet.problems:
                print("--- client problems ---", file=sys.stderr)
                print("\n".join(fleet.problems[:20]), file=sys.stderr)
            raise
    print(report(chatr, baseline, args.members))
    duplicates = sum(s.get("duplicates", 0) for s in statuses)
    late = sum(s.get("late", 0) for s in statuses)
    problems = max(sum(s.get("problems", 0) for s in statuses), len(fleet.problems))
    print(
        f"clients: {duplicates} duplicate frames, {late} arrivals after a timeout, "
        f"{problems} problems" + (f", first: {fleet.problems[:3]}" if fleet.problems else "")
    )
    for case in (chatr, baseline):
        frames = sum(s.get("frames", {}).get(case.name, 0) for s in statuses)
        size = sum(s.get("bytes", {}).get(case.name, 0) for s in statuses)
        per = (frames - args.members) / max(case.sent * args.members, 1)  # less the handshake
        print(
            f"{case.name} frames: {frames} for {case.sent} messages (priming and warm-up "
            f"included) to {args.members} sockets: {per:.2f} per delivery, "
            f"{size / max(frames, 1):.0f} bytes on average"
        )
    print(
        f"machine busy during measurement: {busy * 100:.0f}% of {os.cpu_count()} cores "
        f"(servers, clients, this sender, PostgreSQL and Redis); "
        f"load average now {os.getloadavg()[0]:.2f}; "
        f"whole run {time.monotonic() - run_started:.0f} s"
    )


async def chatr_stack(stack: contextlib.AsyncExitStack, server: Server, seed: Seed) -> Stack:
    client = httpx.AsyncClient(base_url=server.url, timeout=60)
    stack.push_async_callback(client.aclose)
    conversation_id = encode(Kind.CONVERSATION, seed.conversation_id)

    def payload(body: str, client_id: str) -> dict[str, Any]:
        message = {"conversationId": conversation_id, "body": body, "clientMessageId": client_id}
        return {"query": SEND, "variables": {"input": message}}

    headers = {"Authorization": f"Bearer {seed.tokens[0]}"}
    return Stack("chatr", server, client, "/graphql", payload, headers)


async def baseline_stack(
    stack: contextlib.AsyncExitStack, server: Server, conversation_id: int
) -> Stack:
    client = httpx.AsyncClient(base_url=server.url, timeout=60)
    stack.push_async_callback(client.aclose)

    def payload(body: str, _client_id: str) -> dict[str, Any]:
        return {"conversationId": conversation_id, "body": body}

    return Stack("baseline", server, client, "/send", payload)


def print_header(
    args: argparse.Namespace, servers: list[Server], fleet: Fleet, idle: float, files: int
) -> None:
    versions = ", ".join(
        f"{name} {version(name)}" for name in ("strawberry-graphql", "uvicorn", "redis")
    )
    pids = ", ".join(f"{s.name} pid {s.process.pid} :{s.port}" for s in servers)
    shares = "+".join(str(w.chatr) for w in fleet.workers)
    print(
        f"chatr fan-out bench: {args.members} recipients per message ({args.subscription}), "
        f"{args.messages} messages per stack in {args.rounds} alternating rounds after "
        f"{args.warmup} warm-up; Python {sys.version.split()[0]}, {versions}"
    )
    print(f"chatr code: {args.tree}")
    print(f"servers: {pids}; client processes: {shares} sockets per stack; open files {files}")
    print(
        f"before start: machine {idle * 100:.0f}% busy over 1 s ({os.cpu_count()} cores), "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def describe_tree() -> str:
    """The chatr code under test: the commit, and whether chatr/ differs from it."""
    try:
        head, dirty = (
            subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            for command in (
                ["git", "rev-parse", "--short", "HEAD"],
                ["git", "status", "--porcelain", "--", "chatr"],
            )
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return head + (" + uncommitted changes in chatr/" if dirty else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=MAX_MEMBERS, help="group size = sockets")
    parser.add_argument("--messages", type=int, default=150, help="measured messages per stack")
    parser.add_argument("--warmup", type=int, default=5, help="discarded messages per stack")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per stack")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument(
        "--subscription", choices=sorted(SUBSCRIPTIONS), default="myEvents", help="chatr side"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for every recipient"
    )
    parser.add_argument("--postgres", default=PG_URL, help="server URL, no database")
    parser.add_argument("--redis", default=REDIS_URL)
    args = parser.parse_args(argv)
    if not 2 <= args.members <= MAX_MEMBERS:
        parser.error(f"--members must be 2-{MAX_MEMBERS} (a group's limit)")
    if args.messages < 2 or args.warmup < 0 or args.rounds < 1 or args.client_processes < 1:
        parser.error("--messages >= 2, --warmup >= 0, --rounds and --client-processes >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return run_worker()
    args = parse_args(argv)
    args.tree = describe_tree()
    try:
        asyncio.run(run_until_signalled(run, args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for pid in list(_live_workers):
            _kill_worker_group(pid)
        last_resort_cleanup(args.postgres)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
