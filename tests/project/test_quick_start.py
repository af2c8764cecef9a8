"""The README's serve command works: it starts on the embedded default and answers GraphQL."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.processes import embedded_environment, serving
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_serve_command_starts_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_environment(tmp_path / "data")
    command = [str(ROOT / "scripts" / "serve"), "--port", str(port)]
    with serving(command, port=port, env=env, cwd=tmp_path) as server:
        response = httpx.post(
            f"{server.http_url}/graphql", json={"query": "{ me { id } }"}, timeout=5
        )
        assert response.json() == {"data": {"me": None}}
        ready = httpx.get(f"{server.http_url}/readyz", timeout=5).json()
        assert {k: ready[k] for k in ("ready", "broker", "database", "tasks")} == {
            "ready": True,
            "broker": True,
            "database": True,
            "tasks": True,
        }
        assert all(task["healthy"] for task in ready["taskStatus"].values())
        assert {"revocation-watcher", "presence-sweeper"} <= set(ready["taskStatus"])
        assert (tmp_path / "data" / "chatr.db").exists()
