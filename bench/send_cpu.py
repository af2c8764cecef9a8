"""CPU per send inside one chatr process, without the HTTP server (prints figures).

What it measures
    One chatr app in this process (production settings, PostgreSQL + Redis, the same
    environment as bench/throughput.py's servers), called as an ASGI app: each call is one
    `sendMessage` POST to /graphql with the bench's headers and body, so everything from
    starlette's routing to the encoded response runs (the transport, strawberry, the send
    service, the rate limit, SQL and the publish) — everything but uvicorn's socket and HTTP
    parsing, which is the same for any app. `--conversations` loops send back to back, one
    message in flight per conversation; CPU per send is this process's CPU time (user +
    system, `time.process_time`) over the measured sends, so PostgreSQL's and Redis's own
    work is not in it. On a shared machine the CPU time per send still varies by tens of
    percent with the other processes' load (caches, cores): compare the minimum over rounds.

    Baseline, same run, same calls: bench/baseline_app.py (the bare asyncpg INSERT + PUBLISH
    app bench/throughput.py runs as its baseline servers) in this same process, on the same
    database and Redis, in rounds alternating with chatr's. The difference of the two is what
    chatr's request path costs on top of the work any such server does; uvicorn's part (the
    same for both) is left out of both.

    `--profile` runs the measured sends under cProfile, timed in CPU time, and prints the
    functions with the most own time (it inflates the CPU per send several times: compare
    figures without it).

How to run (from the project root)
    .venv/bin/python bench/send_cpu.py [--sends 1000] [--rounds 5] [--conversations 10]
        [--profile] [--uvloop] [--no-baseline]

What it needs
    PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379, as bench/throughput.py (a fresh
    `chatr_bench_<random>` database, dropped on exit; a unique channel prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/send_cpu.py`
    sys.path.insert(0, str(ROOT))

from bench.latency import PG_URL, REDIS_URL, prepare_environment, run_script  # noqa: E402
from bench.throughput import (  # noqa: E402
    SEND,
    check_baseline,
    check_chatr,
    create_baseline_conversations,
    numbered,
    seed_chatr,
)
from chatr.global_ids import Kind, encode  # noqa: E402
from chatr.infra import heap  # noqa: E402


async def call(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, bytes]:
    """One POST to `path` through the ASGI app; (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a disconnect never comes
        raise AssertionError

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class AppUnderTest:
    """One ASGI app in this process and how to make its sends from conversation i: `payloads`
    gives conversation i's builder for a phase (bench.throughput.numbered), called per send."""

    name: str
    app: Any
    path: str
    headers: Callable[[int], list[tuple[bytes, bytes]]]
    payloads: Callable[[int, str], Callable[[int], bytes]]
    check: Callable[[int, bytes], bool]
    figures: list[float] = field(default_factory=list)


async def chatr_app(
    stack: contextlib.AsyncExitStack, env: dict[str, str], args: argparse.Namespace, tag: str
) -> AppUnderTest:
    from chatr.app import create_app
    from chatr.settings import load_settings

    env["CHATR_DB_POOL_SIZE"] = "5"
    seed = await seed_chatr(env, args.conversations)
    app = create_app(load_settings(env))
    await stack.enter_async_context(app.router.lifespan_context(app))

    def headers(index: int) -> list[tuple[bytes, bytes]]:
        return [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {seed.tokens[index]}".encode()),
        ]

    def payloads(index: int, phase: str) -> Callable[[int], bytes]:
        message = {
            "conversationId": encode(Kind.CONVERSATION, seed.conversation_ids[index]),
            "body": "m{n}",
            "clientMessageId": f"{tag}-{phase}-{index}-{{n}}",
        }
        return numbered({"query": SEND, "variables": {"input": message}})

    return AppUnderTest("chatr", app, "/graphql", headers, payloads, check_chatr)


async def baseline_app(
    stack: contextlib.AsyncExitStack, env: dict[str, str], conversations: int
) -> AppUnderTest:
    """bench/baseline_app.py, the bare INSERT + PUBLISH app bench/throughput.py compares
    chatr's servers with, on the same database and Redis."""
    from bench import baseline_app as baseline

    for name in ("BASELINE_DATABASE_URL", "REDIS_URL", "BASELINE_CHANNEL_PREFIX"):
        os.environ[name] = env[name]
    await create_baseline_conversations(env["BASELINE_DATABASE_URL"], conversations)
    app = baseline.app
    await stack.enter_async_context(app.router.lifespan_context(app))

    def headers(_index: int) -> list[tuple[bytes, bytes]]:
        return [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]

    def payloads(index: int, _phase: str) -> Callable[[int], bytes]:
        return numbered({"conversationId": index + 1, "body": "m{n}"})

    return AppUnderTest("baseline", app, "/send", headers, payloads, check_baseline)


async def send_loops(under_test: AppUnderTest, conversations: int, total: int, phase: str) -> None:
    per_loop = max(1, total // conversations)

    async def loop(index: int) -> None:
        head = under_test.headers(index)
        payload = under_test.payloads(index, phase)
        for number in range(per_loop):
            body = payload(number)
            status, answer = await call(under_test.app, under_test.path, head, body)
            if not under_test.check(status, answer):
                raise RuntimeError(f"{under_test.name} send failed: {status} {answer[:300]!r}")

    await asyncio.gather(*(loop(i) for i in range(conversations)))


async def run(args: argparse.Namespace) -> None:
    tag = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix="chatr-send-cpu-"))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, True)
        env = await prepare_environment(stack, args, tag, log_dir)
        apps = [await chatr_app(stack, env, args, tag)]
        if not args.no_baseline:
            apps.append(await baseline_app(stack, env, args.conversations))
        heap.settle()  # as chatr.asgi does once the app is built
        for under_test in apps:
            await send_loops(
                under_test, args.conversations, max(args.sends // 10, args.conversations), "warm"
            )
        # CPU time, not wall time: a send() that wakes PostgreSQL may be preempted, and wall
        # time would blame it for the other process's turn.
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        sends = max(1, args.sends // args.conversations) * args.conversations
        for number in range(args.rounds):
            # Alternating, as bench/throughput.py's rounds: a machine that slows down or
            # speeds up during the run does not favour one app.
            for under_test in apps if number % 2 == 0 else list(reversed(apps)):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                if profiler is not None and under_test is apps[0]:
                    profiler.enable()
                await send_loops(under_test, args.conversations, args.sends, f"measured{number}")
                if profiler is not None:
                    profiler.disable()
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                under_test.figures.append(cpu / sends * 1000)
                print(
                    f"round {number + 1}, {under_test.name}: {sends} sends from "
                    f"{args.conversations} conversations in {wall:.2f} s, "
                    f"{under_test.figures[-1]:.3f} ms CPU per send ({sends / wall:.0f} sends/s "
                    f"wall{', under cProfile' if profiler and under_test is apps[0] else ''})",
                    flush=True,
                )
        for under_test in apps:
            print(
                f"{under_test.name}: CPU per send in this process over {args.rounds} rounds: "
                f"min {min(under_test.figures):.3f} ms, median "
                f"{statistics.median(under_test.figures):.3f} ms",
                flush=True,
            )
        if len(apps) == 2:
            chatr, base = (min(a.figures) for a in apps)
            print(
                f"chatr / baseline (minimums): {chatr / base:.2f}x, chatr's extra "
                f"{chatr - base:.3f} ms per send; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        if profiler is not None:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            calls = stats.total_calls  # type: ignore[attr-defined]
            print(
                f"{calls / (sends * args.rounds):.0f} Python function calls per chatr send (a "
                "measure of the work that, unlike CPU time, a busy machine does not blur)",
                flush=True,
            )
            stats.sort_stats(args.sort).print_stats(args.top)
            if args.profile_out:
                stats.dump_stats(args.profile_out)
            print(out.getvalue())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sends", type=int, default=1000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument(
        "--no-baseline", action="store_true", help="measure chatr alone (no baseline app)"
    )
    parser.add_argument("--profile", action="store_true", help="chatr's sends under cProfile")
    parser.add_argument("--sort", default="tottime", help="pstats sort key with --profile")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--profile-out", help="also write the cProfile stats to this file")
    parser.add_argument("--postgres", default=PG_URL, help="server URL, no database")
    parser.add_argument("--redis", default=REDIS_URL)
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop, as uvicorn runs the servers"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return run_script(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
