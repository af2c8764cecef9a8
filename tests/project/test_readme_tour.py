"""Every snippet of the README's guided tour works against a running server, as written.

The tour marks each snippet with an HTML comment just before its fenced block:
`<!-- tour: graphql [as=NAME] [events=N] [cursor] -->` before a ```graphql block (what one
types into GraphiQL: signed in as NAME, whose token an earlier `register` under the alias NAME
returned; a subscription is read for its first N events; `cursor` puts the first cursor the
previous subscription gave where the text says `<cursor>`, as a reader would paste it), and
`<!-- tour: sh -->` before a ```sh block (run by bash, all in one script, in order).

Each track runs against its own fresh embedded-default server (`chatr serve`), so the ids the
tour names are the ones it hands out; 127.0.0.1:8000 becomes the server's free port.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.typing import Subprotocol

from tests.support.processes import ServerProcess, embedded_environment, serving
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = re.compile(
    r"<!-- tour: (?P<kind>graphql|sh)(?P<options>[^>]*)-->\s*\n"
    r"```(?P<fence>\w+)\n(?P<code>.*?)\n```",
    re.DOTALL,
)


@dataclass(frozen=True)
class Snippet:
    kind: str
    options: dict[str, str]
    code: str


def tour_snippets() -> list[Snippet]:
    text = (ROOT / "README.md").read_text()
    snippets = []
    for match in SNIPPET.finditer(text):
        assert match["fence"] == match["kind"], match.group(0)[:80]
        options = {}
        for word in match["options"].split():
            key, _, value = word.partition("=")
            options[key] = value
        snippets.append(Snippet(match["kind"], options, match["code"]))
    return snippets


@contextmanager
def _fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    command = [sys.executable, "-m", "chatr.cli", "serve", "--port", str(port)]
    with serving(command, port=port, env=embedded_environment(tmp_path), cwd=tmp_path) as server:
        yield server


def test_the_tour_has_every_step_in_both_forms() -> None:
    snippets = tour_snippets()
    graphql = [s.code for s in snippets if s.kind == "graphql"]
    shell = "\n".join(s.code for s in snippets if s.kind == "sh")
    for step in ("register(", "userByUsername(", "sendFriendRequest(", "sendMessage("):
        assert any(step in code for code in graphql), step
        assert step in shell, step
    assert any("conversationEvents(" in code for code in graphql)
    assert any("myEvents(after:" in code for code in graphql)
    assert "graphql-transport-ws" in shell


async def _subscribe(ws_url: str, token: str, query: str, events: int) -> list[dict[str, Any]]:
    """The first `events` results of `query` over graphql-transport-ws, signed in by
    connection params as GraphiQL sends them."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(
        ws_url, subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as socket:
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        async with asyncio.timeout(20):
            while len(received) < events:
                frame = json.loads(await socket.recv())
                assert frame["type"] == "next", frame
                assert "errors" not in frame["payload"], frame["payload"]
                received.append(frame["payload"]["data"])
    return received


async def test_every_graphql_step_runs_as_typed_into_graphiql(tmp_path: Path) -> None:
    tokens: dict[str, str] = {}
    last_cursor: str | None = None
    ran = 0
    with _fresh_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            for snippet in (s for s in tour_snippets() if s.kind == "graphql"):
                name = snippet.options.get("as")
                token = tokens[name] if name else None
                code = snippet.code
                if "cursor" in snippet.options:
                    assert last_cursor is not None and "<cursor>" in code
                    code = code.replace("<cursor>", last_cursor)
                if code.lstrip().startswith("subscription"):
                    assert token is not None, "subscriptions need someone signed in"
                    events = int(snippet.options["events"])
                    results = await _subscribe(server.ws_url, token, code, events)
                    assert len(results) == events
                    [field] = results[0]
                    last_cursor = results[0][field]["cursor"]
                else:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    response = await http.post("/graphql", json={"query": code}, headers=headers)
                    body = response.json()
                    assert "errors" not in body, (code, body["errors"])
                    for alias, value in body["data"].items():
                        if isinstance(value, dict) and "accessToken" in value:
                            tokens[alias] = value["accessToken"]
                ran += 1
    assert ran >= 7


def test_every_curl_step_runs_in_a_shell(tmp_path: Path) -> None:
    shell = [s.code for s in tour_snippets() if s.kind == "sh"]
    with _fresh_server(tmp_path) as server:
        port = server.http_url.rsplit(":", 1)[1]
        script = "set -euo pipefail\n" + "\n".join(shell).replace(
            "127.0.0.1:8000", f"127.0.0.1:{port}"
        )
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    # the subscription snippet printed the two messages, in order
    assert result.stdout.index("Hi Bob!") < result.stdout.index("Book club on Thursday?")
