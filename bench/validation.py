"""Validation cost of adversarial documents, and what they do to everyone else's latency.

What it measures
    1. In this process, for every family of bench/adversarial.py grown to the largest document
       the parse limits let through (tokens, body bytes): the time chatr's validator
       (chatr.schema.validation, uncached: every document is new) takes, median and worst of
       --variants random documents, as wall time and as this thread's CPU time (the machine is
       shared, so wall time includes other processes' turns). Baseline, same run: a realistic
       client query (fragments repeating `id`), `{__typename}`, and the report's document (330
       repeated `me` fields) under graphql-core's stock rules, i.e. before the bounds.
       Target: worst <= 20 ms per family.
    2. One chatr server (uvicorn, the embedded default in a temporary data dir): latency of
       `{__typename}` over HTTP from one client, one request at a time, for --seconds with no
       attacker (baseline), then for --seconds while two attacker processes loop fresh
       adversarial documents of every family as fast as the server answers them.
       Target: p99 under attack <= 50 ms.

How to run (from the project root)
    .venv/bin/python bench/validation.py [--variants N] [--seconds S]

What it needs
    Nothing running: the server uses SQLite in a temporary directory and the in-process broker.
    Everything it starts (one uvicorn process group, two attacker processes, the directory) is
    stopped or removed on exit, including Ctrl-C and errors.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from graphql import DocumentNode, GraphQLError, parse, specified_rules, validate
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.adversarial import FAMILIES, Limits, largest, repeated_fields  # noqa: E402
from bench.latency import (  # noqa: E402
    base_env,
    migrate,
    run_script,
    start_server,
    wait_until_up,
)
from chatr.infra import heap  # noqa: E402
from chatr.schema import build_schema  # noqa: E402
from chatr.schema.validation import validator  # noqa: E402
from chatr.settings import Settings  # noqa: E402

CLIENT_QUERY = (
    "query Me { me { id __typename "
    + " ".join(f"...Part{i}" for i in range(12))
    + " } conversations(first: 5) { edges { cursor node { id __typename name lastMessage "
    "{ id seq body sender { id username } } } } pageInfo { hasNextPage endCursor } } } "
    + " ".join(
        f"fragment Part{i} on User {{ id __typename username displayName avatarUrl }}"
        for i in range(12)
    )
)
TYPENAME = "{ __typename }"


# -- 1. in process -------------------------------------------------------------------------


def _time(
    check: Callable[[DocumentNode], list[GraphQLError]], document: DocumentNode
) -> tuple[float, float, list[GraphQLError]]:
    wall, cpu = time.perf_counter(), time.thread_time()
    errors = check(document)
    return time.perf_counter() - wall, time.thread_time() - cpu, errors


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def in_process(variants: int, settings: Settings) -> tuple[list[str], float]:
    schema = build_schema(settings)._schema
    limits = Limits(settings.max_query_tokens, settings.max_request_body_bytes)
    heap.settle()  # as the app does after start-up
    lines = [
        f"{'document':38s} {'size':>12s} {'median ms':>9s} {'worst ms':>9s} "
        f"{'worst cpu':>9s}  outcome"
    ]

    def row(name: str, size: str, samples: list[tuple[float, float, list[GraphQLError]]]) -> float:
        walls = [s[0] for s in samples]
        cpus = [s[1] for s in samples]
        errors = samples[-1][2]
        outcome = "valid" if not errors else errors[0].message[:48]
        lines.append(
            f"{name:38s} {size:>12s} {_ms(statistics.median(walls))} {_ms(max(walls))} "
            f"{_ms(max(cpus))}  {outcome}"
        )
        return max(cpus)

    for name, document in (
        ("baseline: client query", CLIENT_QUERY),
        ("baseline: {__typename}", TYPENAME),
    ):
        parsed = parse(document)
        row(
            name,
            f"{len(document)} B",
            [_time(validator(schema, settings), parsed) for _ in range(variants)],
        )
    stock_rules = (
        *specified_rules,
        depth_validator(settings.max_query_depth, None, None),
        alias_validator(settings.max_aliases),
    )
    report = parse(repeated_fields(330, random.Random(0)))
    row(
        "before: 330 repeated fields, stock",
        "330",
        [_time(lambda d: validate(schema, d, stock_rules), report)],
    )
    worst = 0.0
    for name, builder in FAMILIES.items():
        n = largest(builder, limits)
        samples = []
        for seed in range(variants):
            variant = parse(builder(n, random.Random(seed)), max_tokens=settings.max_query_tokens)
            samples.append(_time(validator(schema, settings), variant))
        worst = max(worst, row(name, f"n={n}", samples))
    return lines, worst


# -- 2. a server under attack --------------------------------------------------------------


def _attack(
    url: str, sizes: dict[str, int], stop: Any, ready: Any, counter: Any, seed: int
) -> None:
    """One attacker process: fresh adversarial documents, one request at a time."""
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, timeout=30) as client:
        with ready.get_lock():
            ready.value += 1
        while not stop.is_set():
            for name, builder in FAMILIES.items():
                document = builder(sizes[name], rnd)
                try:
                    client.post("/graphql", json={"query": document})
                except httpx.HTTPError:
                    continue
                with counter.get_lock():
                    counter.value += 1


async def _probe(client: httpx.AsyncClient, seconds: float) -> list[float]:
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": TYPENAME})
        samples.append(time.perf_counter() - started)
        assert response.json() == {"data": {"__typename": "Query"}}, response.text
    return samples


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"{len(samples):6d} {_ms(at(0.5))} {_ms(at(0.9))} {_ms(at(0.99))} {_ms(ordered[-1])}"


async def under_attack(seconds: float, settings: Settings) -> list[str]:
    lines = [
        f"{'{__typename} over HTTP':38s} {'n':>6s} {'p50 ms':>8s} {'p90 ms':>8s} "
        f"{'p99 ms':>8s} {'max ms':>8s}"
    ]
    with tempfile.TemporaryDirectory(prefix="chatr-bench-validation-") as directory:
        env = {
            **base_env(),
            "CHATR_DATA_DIR": directory,
            "CHATR_LOG_LEVEL": "warning",
            "CHATR_MAX_QUERY_TOKENS": str(settings.max_query_tokens),
        }
        await migrate(env)
        server = start_server("chatr", "chatr.asgi:app", env, Path(directory))
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        counter = context.Value("l", 0)
        ready = context.Value("l", 0)
        limits = Limits(settings.max_query_tokens, settings.max_request_body_bytes)
        sizes = {name: largest(builder, limits) for name, builder in FAMILIES.items()}
        attackers = [
            context.Process(
                target=_attack, args=(server.url, sizes, stop, ready, counter, seed), daemon=True
            )
            for seed in (1, 2)
        ]
        try:
            await wait_until_up(server)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                await _probe(client, 1.0)  # warm-up
                baseline = await _probe(client, seconds)
                lines.append(f"{'baseline: no attacker':38s} {_percentiles(baseline)}")
                for attacker in attackers:
                    attacker.start()
                async with asyncio.timeout(120):  # a fresh interpreter each: imports first
                    while ready.value < len(attackers):  # noqa: ASYNC110 (another process)
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                before = counter.value
                attacked = await _probe(client, seconds)
                sent = counter.value - before
                lines.append(f"{'two attackers looping':38s} {_percentiles(attacked)}")
                lines.append(
                    f"adversarial documents answered meanwhile: {sent} ({sent / seconds:.0f}/s)"
                )
        finally:
            stop.set()
            for attacker in attackers:
                if attacker.pid is not None:
                    attacker.join(timeout=10)
                    if attacker.is_alive():
                        attacker.kill()
                        attacker.join()
            await server.stop()
    return lines


async def run(args: argparse.Namespace) -> None:
    settings = Settings()
    if args.max_tokens:
        settings = settings.with_overrides(max_query_tokens=args.max_tokens)
    print(f"parse limit: {settings.max_query_tokens} tokens (CHATR_MAX_QUERY_TOKENS)")
    lines, worst = in_process(args.variants, settings)
    print("Validation of adversarial documents at the parse limits (chatr.schema.validation)")
    print("\n".join(lines))
    print(f"worst CPU time of any adversarial document: {worst * 1000:.1f} ms (target <= 20 ms)")
    print()
    print("\n".join(await under_attack(args.seconds, settings)))
    print("target: p99 under attack <= 50 ms")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variants", type=int, default=5, help="random documents per family")
    parser.add_argument("--seconds", type=float, default=10.0, help="per latency phase")
    parser.add_argument(
        "--max-tokens", type=int, default=0, help="parse limit to try (default: the setting's)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_script(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
