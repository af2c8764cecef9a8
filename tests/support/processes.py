"""chatr as real uvicorn processes, for tests that must cross process boundaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from chatr.settings import Settings
from tests.support.services import free_port


@dataclass(frozen=True)
class ServerProcess:
    http_url: str
    ws_url: str


def _environment(settings: Settings) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CHATR_") and key not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
    }
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.broker_url,
        JWT_SECRET=settings.jwt_secret,
        CHATR_CHANNEL_PREFIX=settings.channel_prefix,
    )
    return env


@contextmanager
def uvicorn_process(settings: Settings, *, startup_timeout: float = 30) -> Iterator[ServerProcess]:
    """`uvicorn chatr.asgi:app` on a free port; SIGTERM and wait on exit."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "chatr.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--ws",
            "websockets-sansio",
            "--ws-per-message-deflate",
            "false",
            "--timeout-graceful-shutdown",
            "5",
        ],
        env=_environment(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"chatr process exited early:\n{output}")
            try:
                if httpx.get(f"http://{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("chatr process did not become ready")
            time.sleep(0.1)
        yield ServerProcess(http_url=f"http://{base}", ws_url=f"ws://{base}/graphql")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
