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

    `--profile` runs the measured sends under cProfile, timed in CPU time, and prints the
    functions with the most own time (it inflates the CPU per send several times: compare
    figures without it).

How to run (from the project root)
    .venv/bin/python bench/send_cpu.py [--sends 1000] [--rounds 5] [--conversations 10]
        [--profile] [--uvloop]

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
import json
import os
import pstats
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/send_cpu.py`
    sys.path.insert(0, str(ROOT))

from bench.latency import PG_URL, REDIS_URL, prepare_environment, run_script  # noqa: E402
from bench.throughput import SEND, seed_chatr  # noqa: E402
from chatr.global_ids import Kind, encode  # noqa: E402


async def call(app: Any, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """One POST /graphql through the ASGI app; (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
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


async def run(args: argparse.Namespace) -> None:
    from chatr.app import create_app
    from chatr.settings import load_settings

    tag = secrets.token_hex(4)
    log_dir = Path(tempfile.mkdtemp(prefix="chatr-send-cpu-"))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, True)
        env = await prepare_environment(stack, args, tag, log_dir)
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

        def payload(index: int, number: int, phase: str) -> bytes:
            message = {
                "conversationId": encode(Kind.CONVERSATION, seed.conversation_ids[index]),
                "body": f"m{number}",
                "clientMessageId": f"{tag}-{phase}-{index}-{number}",
            }
            return json.dumps({"query": SEND, "variables": {"input": message}}).encode()

        async def loops(total: int, phase: str) -> None:
            per_loop = max(1, total // args.conversations)

            async def loop(index: int) -> None:
                head = headers(index)
                for number in range(per_loop):
                    status, body = await call(app, head, payload(index, number, phase))
                    answer = json.loads(body)
                    if status != 200 or answer.get("errors"):
                        raise RuntimeError(f"send failed: {status} {body[:300]!r}")

            await asyncio.gather(*(loop(i) for i in range(args.conversations)))

        await loops(max(args.sends // 10, args.conversations), "warm")
        # CPU time, not wall time: a send() that wakes PostgreSQL may be preempted, and wall
        # time would blame it for the other process's turn.
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        sends = max(1, args.sends // args.conversations) * args.conversations
        figures = []
        for number in range(args.rounds):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            await loops(args.sends, f"measured{number}")
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            figures.append(cpu / sends * 1000)
            print(
                f"round {number + 1}: {sends} sends from {args.conversations} conversations in "
                f"{wall:.2f} s, {figures[-1]:.3f} ms CPU per send ({sends / wall:.0f} sends/s "
                f"wall{', under cProfile' if profiler else ''})",
                flush=True,
            )
        print(
            f"CPU per send in this process over {args.rounds} rounds: min "
            f"{min(figures):.3f} ms, median {statistics.median(figures):.3f} ms; load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if profiler is not None:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            calls = stats.total_calls  # type: ignore[attr-defined]
            print(
                f"{calls / (sends * args.rounds):.0f} Python function calls per send (a "
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
    parser.add_argument("--profile", action="store_true")
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
