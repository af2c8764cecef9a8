"""`chatr demo` gives a newcomer something to look at: people, friends, a DM, a message
request and a group with history, with their sign-in details; running it again adds nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from chatr import demo
from tests.support.processes import embedded_environment, serving
from tests.support.services import free_port

TABLES = ("users", "friendships", "conversations", "memberships", "messages", "events")
ALICES_VIEW = """
query {
  conversations(first: 20) {
    edges { node { kind name peer { username } lastSeq
      messages(first: 20) { edges { node { body sender { username } } } } } }
  }
  messageRequests { edges { node { peer { username } } } }
  incomingFriendRequests { edges { node { user { username } } } }
  friends { edges { node { user { username } } } }
  searchUsers(query: "demo_") { user { username } }
}
"""


def _seed_only(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatr.cli", "demo", "--seed-only"],
        env=embedded_environment(data_dir),
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _rows(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in TABLES
        }


def test_demo_prints_every_sign_in_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    first = _seed_only(tmp_path)
    assert first.returncode == 0, first.stderr
    seeded = _rows(tmp_path / "chatr.db")
    again = _seed_only(tmp_path)
    assert again.returncode == 0, again.stderr
    assert _rows(tmp_path / "chatr.db") == seeded
    assert seeded["users"] == len(demo.PEOPLE)
    assert "people: 5 registered" in first.stdout
    assert "people: 0 registered, 5 existed" in again.stdout
    assert "friend requests: 0 sent" in again.stdout
    for output in (first.stdout, again.stdout):
        assert f"password {demo.PASSWORD}" in output
        for username, display_name in demo.PEOPLE:
            assert username in output and display_name in output
    assert "Traceback" not in first.stderr + again.stderr


def _alices_view(url: str) -> dict[str, Any]:
    login = httpx.post(
        f"{url}/graphql",
        json={
            "query": "mutation ($i: LoginInput!) { login(input: $i) { accessToken } }",
            "variables": {"i": {"login": "demo_alice", "password": demo.PASSWORD}},
        },
        timeout=10,
    ).json()
    token = login["data"]["login"]["accessToken"]
    body = httpx.post(
        f"{url}/graphql",
        json={"query": ALICES_VIEW},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


def test_demo_serves_what_it_seeded_and_alice_can_explore_it(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "chatr.cli", "demo", "--port", str(port)]
    with serving(command, port=port, env=embedded_environment(tmp_path), cwd=tmp_path) as server:
        view = _alices_view(server.http_url)
    conversations = {
        (edge["node"]["kind"], edge["node"]["name"] or edge["node"]["peer"]["username"]): [
            ((m["node"]["sender"] or {}).get("username"), m["node"]["body"])
            for m in edge["node"]["messages"]["edges"]
        ]
        for edge in view["conversations"]["edges"]
    }
    assert set(conversations) == {
        ("DIRECT", "demo_bob"),
        ("DIRECT", "demo_erin"),  # her message request
        ("GROUP", "Book club"),
    }
    assert len(conversations["DIRECT", "demo_bob"]) == 5
    assert len(conversations["DIRECT", "demo_erin"]) == 1
    chatted = [body for sender, body in conversations["GROUP", "Book club"] if body]
    assert len(chatted) >= 6  # the six chat lines, and system messages about joining
    assert [e["node"]["peer"]["username"] for e in view["messageRequests"]["edges"]] == [
        "demo_erin"
    ]
    requests = view["incomingFriendRequests"]["edges"]
    assert [e["node"]["user"]["username"] for e in requests] == ["demo_dave"]
    friends = {e["node"]["user"]["username"] for e in view["friends"]["edges"]}
    assert friends == {"demo_bob", "demo_carol"}
    # verified accounts, so search finds the others
    found = {match["user"]["username"] for match in view["searchUsers"]}
    assert found == {"demo_bob", "demo_carol", "demo_dave", "demo_erin"}
    # and what it printed before serving tells how to sign in
    output = server.output()
    assert f"http://127.0.0.1:{port}/graphql" in output
    assert "Headers tab" in output
