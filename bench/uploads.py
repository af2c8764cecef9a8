"""100 concurrent 5 MB uploads through chatr's own upload endpoint (prints figures).

What it measures
    chatr: one uvicorn process on the embedded default (SQLite, in-process broker, a fresh
    data dir), rate limits off. Before the clock starts, `--users` people register and declare
    `--uploads` uploads between them (`createUpload(kind: FILE, contentType: "text/plain")`),
    so the measured part is the bytes alone: `--uploads` PUTs of `--megabytes` MB each, all
    at once, to the signed URLs, each streamed to disk and then checked (magic bytes) by
    chatr. An upload counts once its PUT answered 200.

    Baseline, same run, same client: bench/uploads_baseline_app.py, a bare starlette endpoint
    (one uvicorn process) that streams each PUT body to a file the same way (chunks written
    by a worker thread), with no auth, database or checks.

    The client sends each body as a stream of 256 KB chunks of one shared buffer (it never
    holds 5 MB per upload either), over one connection per upload.

    Reported per stack: wall time of the whole batch, throughput (MB/s of bodies accepted),
    and the server process's resident memory (VmRSS, /proc) before the batch and at its peak
    during it, sampled every 5 ms; growth = peak - before. Streaming means growth far below
    uploads x size (100 x 5 MB = 500 MB). Rounds alternate the order of the two stacks.

How to run (from the project root)
    .venv/bin/python bench/uploads.py [--uploads 100] [--megabytes 5] [--rounds 2]

What it needs
    Nothing but this checkout: no PostgreSQL, no Redis. Loopback only. It writes
    2 x uploads x size per round to a temporary folder (removed on exit), and stops both
    servers (each in its own process group) on exit, including Ctrl-C and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/uploads.py`
    sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    Server,
    base_env,
    migrate,
    run_script,
    start_server,
    wait_until_up,
)

CHUNK = 256 * 1024
SAMPLE_SECONDS = 0.005
PASSWORD = "Bench-pass1"
REGISTER = """
mutation Register($input: RegisterInput!) { register(input: $input) { accessToken } }
"""
CREATE_UPLOAD = """
mutation Create($size: Int!) {
  createUpload(kind: FILE, contentType: "text/plain", size: $size, fileName: "bench.txt") {
    url
  }
}
"""


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS), bytes; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Batch:
    seconds: float
    accepted: int
    rss_before: int
    rss_peak: int

    def throughput(self, size: int) -> float:
        return self.accepted * size / 1e6 / self.seconds

    @property
    def growth(self) -> int:
        return self.rss_peak - self.rss_before


async def body(payload: memoryview, size: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        piece = payload[: min(CHUNK, size - sent)]
        sent += len(piece)
        yield bytes(piece)


async def run_batch(server: Server, urls: list[str], size: int) -> Batch:
    """Every PUT at once; RSS sampled until the last one answered."""
    payload = memoryview(b"chatr upload bench line\n" * (CHUNK // 24 + 1))[:CHUNK]
    pid = server.process.pid
    before = rss_bytes(pid)
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(SAMPLE_SECONDS)

    limits = httpx.Limits(max_connections=len(urls), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=300) as client:

        async def put(url: str) -> bool:
            response = await client.put(
                url,
                content=body(payload, size),
                headers={"content-length": str(size), "content-type": "text/plain"},
            )
            return response.status_code == 200

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        results = await asyncio.gather(*(put(url) for url in urls))
        elapsed = time.perf_counter() - started
        done.set()
        await sampler
    peak = max(peak, rss_bytes(pid))
    return Batch(elapsed, sum(results), before, peak)


async def declare_uploads(server: Server, args: argparse.Namespace, size: int) -> list[str]:
    """Register the users and declare every upload (before the clock starts)."""
    urls: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        per_user = -(-args.uploads // args.users)
        for index in range(args.users):
            answer = await client.post(
                "/graphql",
                json={
                    "query": REGISTER,
                    "variables": {"input": {"username": f"bench{index}", "password": PASSWORD}},
                },
            )
            token = answer.json()["data"]["register"]["accessToken"]
            for _ in range(min(per_user, args.uploads - len(urls))):
                declared = await client.post(
                    "/graphql",
                    json={"query": CREATE_UPLOAD, "variables": {"size": size}},
                    headers={"authorization": f"Bearer {token}"},
                )
                urls.append(declared.json()["data"]["createUpload"]["url"])
    return urls


async def start(
    stack: contextlib.AsyncExitStack, name: str, app: str, env: dict[str, str], logs: Path
) -> Server:
    server = start_server(name, app, env, logs)
    stack.push_async_callback(server.stop)
    await wait_until_up(server)
    return server


def mb(value: int) -> str:
    return f"{value / 1e6:,.1f} MB"


async def run(args: argparse.Namespace) -> None:
    size = args.megabytes * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="chatr-bench-uploads-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            results: dict[str, list[Batch]] = {"chatr": [], "baseline": []}
            for round_number in range(args.rounds):
                order = ("chatr", "baseline") if round_number % 2 == 0 else ("baseline", "chatr")
                for name in order:
                    results[name].append(await one_round(stack, name, args, size, work))
                    shutil.rmtree(work / "round", ignore_errors=True)
            print(report(results, args, size))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def one_round(
    stack: contextlib.AsyncExitStack,
    name: str,
    args: argparse.Namespace,
    size: int,
    work: Path,
) -> Batch:
    """A fresh server of the stack (so its RSS starts from the same state every round)."""
    round_dir = work / "round"
    round_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as servers:
        if name == "chatr":
            env = base_env() | {
                "CHATR_DATA_DIR": str(round_dir / "data"),
                "CHATR_RATE_LIMITS": "off",
                "CHATR_UPLOAD_QUOTA_BYTES": "0",
                "JWT_SECRET": secrets.token_urlsafe(48),
                "CHATR_LOG_LEVEL": "warning",
            }
            env["DATABASE_URL"] = f"sqlite:///{round_dir / 'data' / 'chatr.db'}"
            (round_dir / "data").mkdir(exist_ok=True)
            await migrate(env)
            server = await start(servers, "chatr", "chatr.asgi:app", env, work)
            urls = await declare_uploads(server, args, size)
        else:
            env = base_env() | {"BASELINE_UPLOAD_DIR": str(round_dir)}
            server = await start(servers, "baseline", "bench.uploads_baseline_app:app", env, work)
            urls = [f"/upload/{index}.txt" for index in range(args.uploads)]
        batch = await run_batch(server, urls, size)
        if batch.accepted != args.uploads:
            raise RuntimeError(
                f"{name}: {batch.accepted} of {args.uploads} uploads accepted:\n"
                + server.log_tail()
            )
        return batch


def report(results: dict[str, list[Batch]], args: argparse.Namespace, size: int) -> str:
    lines = [
        f"{args.uploads} concurrent uploads of {args.megabytes} MB "
        f"({mb(args.uploads * size)} per batch), {args.rounds} round(s)",
        f"{'stack':<10} {'round':>5} {'seconds':>8} {'MB/s':>8} {'RSS before':>12} "
        f"{'RSS peak':>12} {'growth':>10}",
    ]
    for name, batches in results.items():
        for index, batch in enumerate(batches, 1):
            lines.append(
                f"{name:<10} {index:>5} {batch.seconds:>8.2f} {batch.throughput(size):>8.1f} "
                f"{mb(batch.rss_before):>12} {mb(batch.rss_peak):>12} {mb(batch.growth):>10}"
            )
    best = {name: max(b.throughput(size) for b in batches) for name, batches in results.items()}
    growth = {name: max(b.growth for b in batches) for name, batches in results.items()}
    lines.append(
        f"best throughput: chatr {best['chatr']:.1f} MB/s, baseline {best['baseline']:.1f} MB/s "
        f"(chatr {best['chatr'] / best['baseline']:.2f} x baseline)"
    )
    lines.append(
        f"largest RSS growth: chatr {mb(growth['chatr'])}, baseline {mb(growth['baseline'])} "
        f"(vs {mb(args.uploads * size)} if every body were held in memory)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--megabytes", type=int, default=5)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    runner: Callable[[argparse.Namespace], Awaitable[None]] = run
    return run_script(runner, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
