"""chatr as real server processes, for tests that must cross process boundaries (or run the
commands a newcomer types): one way to start a server, wait until it answers, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from chatr.settings import Settings
from tests.support.services import free_port


@dataclass(frozen=True)
class ServerProcess:
    http_url: str
    ws_url: str
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        """Everything the server wrote so far (stdout and stderr); only once it has exited."""
        assert self.process.poll() is not None, "read the output of a stopped server only"
        return self.process.stdout.read().decode() if self.process.stdout else ""


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any chatr configuration (so a server falls back to
    its defaults: the embedded SQLite file, the in-process broker), plus `variables`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CHATR_") and key not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET")
    }
    return env | variables


def embedded_environment(data_dir: Path, **variables: str) -> dict[str, str]:
    """A fresh embedded-default chatr keeping its files in `data_dir`, plus `variables`."""
    return clean_environment(CHATR_DATA_DIR=str(data_dir), **variables)


@contextmanager
def serving(
    command: list[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: Path | None = None,
    ready_path: str = "/healthz",
    startup_timeout: float = 60,
) -> Iterator[ServerProcess]:
    """Run `command`, a server listening on 127.0.0.1:`port`, until `ready_path` answers 200;
    on exit, SIGTERM its process group (SIGKILL if it does not end) and wait for it.

    If it exits before it is ready, RuntimeError carries what it printed.
    """
    process = subprocess.Popen(
        command,
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"127.0.0.1:{port}"
    server = ServerProcess(
        http_url=f"http://{base}", ws_url=f"ws://{base}/graphql", process=process
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited early:\n{server.output()}")
            try:
                if httpx.get(server.http_url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[0]} did not answer {ready_path} in time")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def _environment(settings: Settings) -> dict[str, str]:
    return clean_environment(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.broker_url,
        JWT_SECRET=settings.jwt_secret,
        CHATR_CHANNEL_PREFIX=settings.channel_prefix,
    )


@contextmanager
def uvicorn_process(settings: Settings, *, startup_timeout: float = 30) -> Iterator[ServerProcess]:
    """`uvicorn chatr.asgi:app` on a free port, ready once `/readyz` answers."""
    port = free_port()
    command = [
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
    ]
    with serving(
        command,
        port=port,
        env=_environment(settings),
        ready_path="/readyz",
        startup_timeout=startup_timeout,
    ) as server:
        yield server
