"""The README's serve command works: it starts on the embedded default and answers GraphQL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_serve_command_starts_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CHATR_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env["CHATR_DATA_DIR"] = str(tmp_path / "data")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "serve"), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become healthy in 60 s"
            time.sleep(0.2)
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ me { id } }"}, timeout=5
        )
        assert response.json() == {"data": {"me": None}}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        assert {k: ready[k] for k in ("ready", "broker", "database", "tasks")} == {
            "ready": True,
            "broker": True,
            "database": True,
            "tasks": True,
        }
        assert all(task["healthy"] for task in ready["taskStatus"].values())
        assert {"revocation-watcher", "presence-sweeper"} <= set(ready["taskStatus"])
        assert (tmp_path / "data" / "chatr.db").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
