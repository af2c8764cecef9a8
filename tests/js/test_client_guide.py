"""The client guide's examples (docs/clients.md) run as written against a served chatr.

Each example is taken from the guide by its heading, its placeholder URLs pointed at the test
server, and run: the JavaScript ones bundled by esbuild for Node with a prelude that supplies
what a browser app has (a token in `localStorage`, `sha256`, a WebSocket) and a postlude that
uses what the example exports; the gql one in this process. Each must sign in, read `me`, and
receive a live event, so a guide that drifts from the API fails here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatr.settings import Settings
from tests.js import npm
from tests.support.api import Account, register
from tests.support.servers import RunningApp, served_app

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.xdist_group("browser")  # Node bundles and runs: one at a time


def guide_example(heading: str, language: str) -> str:
    """The first `language` code block under the `## heading` of the guide."""
    text = GUIDE.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert found, f"no {language} example under '## {heading}'"
    return found.group(1)


def _pointed_at(code: str, server: RunningApp) -> str:
    assert server.ws_url
    http_url = server.ws_url.replace("ws://", "http://").removesuffix("/graphql")
    ws_url = server.ws_url.removesuffix("/graphql")
    return code.replace("https://chat.example", http_url).replace("wss://chat.example", ws_url)


#: What a browser app has that Node 20 lacks, and the test's token.
PRELUDE = """
import { WebSocket as __WebSocket } from "ws";
import { createHash as __createHash } from "node:crypto";
globalThis.WebSocket ??= __WebSocket;
const __config = JSON.parse(process.env.GUIDE_CONFIG);
globalThis.localStorage = { getItem: () => __config.token };
const sha256 = async (text) => __createHash("sha256").update(text).digest("hex");
const __done = (result) => { console.log(JSON.stringify(result)); process.exit(0); };
setTimeout(() => { console.log(JSON.stringify({ error: "timed out" })); process.exit(1); }, 60000);
// Another person's message, sent every second until the example has seen one live.
const __send = (n) => fetch(__config.httpUrl, {
  method: "POST",
  headers: { "Content-Type": "application/json", Authorization: `Bearer ${__config.senderToken}` },
  body: JSON.stringify({
    query: "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
    variables: { input: { recipientId: __config.recipientId, body: __config.tag,
                          clientMessageId: `${__config.tag}-${n}` } },
  }),
});
let __sent = 0;
const __sender = setInterval(() => __send(__sent++), 1000);
"""

SUBSCRIPTION = " ".join(
    [
        "subscription Mine { myEvents { __typename cursor",
        "... on MessagePostedEvent { message { body } } } }",
    ]
)

#: The graphql-ws example's own loop never ends and keeps `cursor`: this watches it from the
#: side, set up before the loop starts.
GRAPHQL_WS_WATCH = """
const __watch = setInterval(() => {
  if (cursor !== null) { clearInterval(__watch); __done({ cursor }); }
}, 100);
"""
POSTLUDES = {
    "Apollo Client 4": """
import { gql as __gql } from "@apollo/client";
const __me = await client.query({ query: __gql`{ me { username } }` });
client.subscribe({ query: __gql`SUBSCRIPTION` }).subscribe({
  next: ({ data }) => {
    if (data?.myEvents?.__typename === "MessagePostedEvent") {
      __done({ username: __me.data.me.username, body: data.myEvents.message.body });
    }
  },
});
""",
    "urql 6": """
import { pipe as __pipe, subscribe as __subscribe } from "wonka";
const __me = await client.query("{ me { username } }", {}).toPromise();
__pipe(
  client.subscription(`SUBSCRIPTION`, {}),
  __subscribe(({ data }) => {
    if (data?.myEvents?.__typename === "MessagePostedEvent") {
      __done({ username: __me.data.me.username, body: data.myEvents.message.body,
               error: __me.error?.message });
    }
  })
);
""",
    "graphql-ws alone": "",
    "Relay": """
const __params = (name, text, operationKind) =>
  ({ id: null, cacheID: name, name, operationKind, text, metadata: {} });
const __network = environment.getNetwork();
const __me = await new Promise((resolve, reject) =>
  __network.execute(__params("Me", "query Me { me { username } }", "query"), {}, {})
    .subscribe({ next: resolve, error: reject })
);
__network.execute(__params("Mine", `SUBSCRIPTION`, "subscription"), {}, {}).subscribe({
  next: ({ data }) => {
    if (data?.myEvents?.__typename === "MessagePostedEvent") {
      __done({ username: __me.data.me.username, body: data.myEvents.message.body });
    }
  },
});
""",
}
#: Relay's example subscribes through the graphql-ws client the guide made "as above".
RELAY_WS = """
import { createClient as __createClient } from "graphql-ws";
const ws = __createClient({
  url: "wss://chat.example/graphql",
  connectionParams: () => ({ authorization: `Bearer ${token()}` }),
});
"""


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return npm.install()


@pytest.fixture
async def chatr(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with served_app(settings) as running:
        yield running


async def _run_js(
    heading: str, chatr: RunningApp, node_modules: Path, tmp_path: Path
) -> tuple[dict[str, Any], Account, str]:
    assert chatr.ws_url
    reader, sender = await register(chatr.http), await register(chatr.http)
    tag = f"from the guide {secrets.token_hex(3)}"
    example = guide_example(heading, "js")
    prelude = PRELUDE
    if "const token" not in example:  # the examples that leave `token()` to the app
        prelude += 'const token = () => localStorage.getItem("accessToken");\n'
    if heading == "Relay":
        prelude += RELAY_WS
    if heading == "graphql-ws alone":
        prelude += GRAPHQL_WS_WATCH
    postlude = POSTLUDES[heading].replace("SUBSCRIPTION", SUBSCRIPTION)
    source = tmp_path / "example.mjs"
    source.write_text(_pointed_at(prelude + example + postlude, chatr))
    bundle = tmp_path / "bundle.mjs"
    await _command(
        [
            str(node_modules / ".bin" / "esbuild"),
            str(source),
            "--bundle",
            "--platform=node",
            "--format=esm",
            f"--outfile={bundle}",
            "--log-level=error",
            # bundled CommonJS packages call require(); ESM output needs one to call
            "--banner:js=import { createRequire } from 'node:module';"
            "const require = createRequire(import.meta.url);",
        ],
        env={"NODE_PATH": str(node_modules)},
    )
    config = {
        "token": reader.token,
        "senderToken": sender.token,
        "recipientId": reader.id,
        "httpUrl": chatr.ws_url.replace("ws://", "http://"),
        "tag": tag,
    }
    output = await _command(["node", str(bundle)], env={"GUIDE_CONFIG": json.dumps(config)})
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result, reader, tag


async def _command(argv: list[str], env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=HERE,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, (stdout + stderr).decode()[-3000:]
    return stdout.decode()


@pytest.mark.parametrize("heading", ["Apollo Client 4", "urql 6", "Relay"])
async def test_a_javascript_client_example_reads_me_and_receives_a_live_message(
    heading: str, chatr: RunningApp, node_modules: Path, tmp_path: Path
) -> None:
    result, reader, tag = await _run_js(heading, chatr, node_modules, tmp_path)
    assert result.get("error") is None, result
    assert result["username"] == reader.username
    assert result["body"] == tag


async def test_the_graphql_ws_example_keeps_the_cursor_of_what_it_received(
    chatr: RunningApp, node_modules: Path, tmp_path: Path
) -> None:
    result, _, _ = await _run_js("graphql-ws alone", chatr, node_modules, tmp_path)
    assert isinstance(result["cursor"], str) and result["cursor"]


async def test_the_gql_example_reads_me_and_receives_a_live_message(chatr: RunningApp) -> None:
    reader, sender = await register(chatr.http), await register(chatr.http)
    example = _pointed_at(guide_example("gql (Python)", "python"), chatr)
    # The example's `...` is where an app handles an event: here, keep it and stop.
    example = example.replace("        ...", "        received.append(event)\n        break")
    namespace: dict[str, Any] = {"token": reader.token, "received": []}
    body = "async def run():\n" + "".join(f"    {line}\n" for line in example.splitlines())
    body += "    return me\n"
    exec(compile(body, str(GUIDE), "exec"), namespace)

    async def keep_sending() -> None:
        for n in range(60):
            await sender.send("from gql's example", to=reader, client_id=f"gql-{n}")
            await asyncio.sleep(1)

    sending = asyncio.create_task(keep_sending())
    try:
        me = await asyncio.wait_for(namespace["run"](), timeout=60)
    finally:
        sending.cancel()
    assert me["me"]["username"] == reader.username
    (event,) = namespace["received"]
    assert event["myEvents"]["cursor"]
