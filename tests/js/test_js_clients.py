"""Real JavaScript clients against a served chatr, in headless Chromium, from a page on
another origin (another port), so the browser itself enforces CORS on every request.

Apollo Client 4 (HttpLink behind PersistedQueryLink with hashed GETs, BatchHttpLink,
GraphQLWsLink) and urql 6 with its default configuration (queries over GET) each run a
query, a mutation and a subscription. GraphiQL runs a query and a subscription with the token
in its Headers tab while every non-loopback request is blocked, and leaves a screenshot.

The clients come from the npm registry (tests/js/package-lock.json, `npm ci` here when
node_modules is missing); Chromium is Debian's (/usr/bin/chromium, installed by .ci/run).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chatr.settings import Settings
from tests.js import npm
from tests.support.api import register
from tests.support.servers import RunningApp, served_app
from tests.support.services import free_port

HERE = Path(__file__).resolve().parent
PAGE = "<!doctype html><meta charset=utf-8><title>a web app</title><script src=clients.js></script>"

pytestmark = pytest.mark.xdist_group("browser")  # one Chromium at a time on 2 cores


@pytest.fixture(scope="session")
def clients_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/js installed (npm ci) and the clients bundled for the browser (esbuild)."""
    npm.install()
    site = tmp_path_factory.mktemp("web-app")
    subprocess.run(
        [
            str(HERE / "node_modules" / ".bin" / "esbuild"),
            "src/entry.js",
            "--bundle",
            "--format=iife",
            f"--outfile={site / 'clients.js'}",
            "--log-level=warning",
        ],
        cwd=HERE,
        check=True,
    )
    (site / "index.html").write_text(PAGE)
    return site


@pytest.fixture
def web_app(clients_bundle: Path) -> Iterator[str]:
    """The page's own origin: a static server on another free port."""
    handler = partial(_QuietHandler, directory=str(clients_bundle))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silence: the test output is the clients' results."""


@pytest.fixture
async def chatr(settings: Settings, database: str, web_app: str) -> AsyncIterator[RunningApp]:
    async with served_app(settings.with_overrides(allowed_origins=(web_app,))) as running:
        yield running


async def _browser(*args: str) -> dict[str, Any]:
    assert shutil.which("chromium"), "Chromium is needed: apt-get install chromium (.ci/run does)"
    process = await asyncio.create_subprocess_exec(
        "node",
        str(HERE / "browser.mjs"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=240)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = stdout.decode().strip().splitlines()
    assert lines, stderr.decode()
    report: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in report, json.dumps(report, indent=1)
    assert report["blocked"] == [], report["blocked"]
    return report


async def _run_client(chatr: RunningApp, web_app: str, client: str) -> dict[str, Any]:
    assert chatr.ws_url
    alice = await register(chatr.http)
    bob = await register(chatr.http)
    config = {
        "httpUrl": chatr.ws_url.replace("ws://", "http://"),
        "wsUrl": chatr.ws_url,
        "token": alice.token,
        "recipientId": bob.id,
        "tag": secrets.token_hex(4),
    }
    report = await _browser("clients", f"{web_app}/index.html", client, json.dumps(config))
    result: dict[str, Any] = report["result"]
    assert result["query"]["username"] == alice.username
    assert result["mutation"]["body"].endswith(config["tag"])
    assert result["subscription"]["__typename"] == "MessagePostedEvent"
    assert result["subscription"]["message"]["body"] == result["mutation"]["body"]
    assert all(request["status"] < 500 for request in result["requests"]), result["requests"]
    return result


async def test_apollo_client_runs_a_query_a_mutation_and_a_subscription_across_origins(
    chatr: RunningApp, web_app: str
) -> None:
    result = await _run_client(chatr, web_app, "apollo")
    requests = result["requests"]
    # PersistedQueryLink sent a hash alone first, over GET, and recovered from the miss.
    assert any(r["hashOnly"] and r["method"] == "GET" for r in requests), requests
    # BatchHttpLink sent two operations in one POST, answered in order.
    assert any(r["batch"] == 2 for r in requests), requests
    me, availability = result["batch"]
    assert me["username"] == result["query"]["username"]
    assert availability == {"__typename": "UsernameAvailability", "available": True}


async def test_urql_with_its_default_configuration_runs_its_queries_over_get(
    chatr: RunningApp, web_app: str
) -> None:
    result = await _run_client(chatr, web_app, "urql")
    methods = {(r["method"], r["status"]) for r in result["requests"]}
    assert ("GET", 200) in methods, result["requests"]
    assert ("POST", 200) in methods, result["requests"]


async def test_graphiql_runs_a_query_and_a_subscription_offline_with_the_headers_tab(
    server: RunningApp, tmp_path: Path
) -> None:
    assert server.ws_url
    alice = await register(server.http)
    bob = await register(server.http)
    http_url = server.ws_url.replace("ws://", "http://")
    body = f"hello from graphiql {secrets.token_hex(3)}"
    screenshot = tmp_path / "graphiql.png"
    config = {
        "token": alice.token,
        "httpUrl": http_url,
        "query": "query Me { me { username } }",
        "expectQuery": alice.username,
        "subscription": (
            "subscription Mine { myEvents { cursor "
            "... on MessagePostedEvent { message { body } } } }"
        ),
        "expectSubscription": body,
        "send": {
            "query": "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
            "variables": {
                "input": {"recipientId": bob.id, "body": body, "clientMessageId": "graphiql"}
            },
        },
        "screenshot": str(screenshot),
    }
    report = await _browser("graphiql", http_url, json.dumps(config))
    assert alice.username in report["result"]["queryResult"]
    assert body in report["result"]["subscriptionResult"]
    assert screenshot.stat().st_size > 10_000
