"""Administrators: the first one from the CLI, listing, suspending and deleting accounts."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from chatr import cli
from chatr.services import admin
from chatr.settings import Settings
from tests.support.api import LOGIN, ME, PASSWORD, Account, GraphQLError, data, register
from tests.support.ids import Kind, global_id, missing, pk
from tests.support.servers import RunningApp
from tests.support.ws import TRANSPORT_WS

USERS = """
query Users($search: String) {
  users(search: $search, first: 50) { edges { node { username role suspendedAt email } } }
}
"""
SUSPEND = "mutation S($u: ID!) { suspendUser(userId: $u) { username suspendedAt } }"
UNSUSPEND = "mutation U($u: ID!) { unsuspendUser(userId: $u) { suspendedAt } }"
DELETE = "mutation D($u: ID!) { deleteUser(userId: $u) { deletedUserId } }"
HISTORY = """
query H($id: ID!) {
  conversation(id: $id) { messages(first: 10) { edges { node { body sender { id } } } } }
}
"""


async def _admin(app: RunningApp, username: str = "root") -> Account:
    await admin.create_admin(app.runtime, username=username, password=PASSWORD)
    payload = (await data(app.http, LOGIN, {"input": {"login": username, "password": PASSWORD}}))[
        "login"
    ]
    return Account(
        app.http, payload["user"]["id"], username, payload["accessToken"], payload["refreshToken"]
    )


async def _codes(account: Account, query: str, **variables: object) -> list[str]:
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return failure.value.codes


async def test_admin_lists_and_searches_accounts(app: RunningApp) -> None:
    root = await _admin(app)
    await register(app.http, "findme")
    await register(app.http, "other")
    every = (await root.call(USERS))["users"]["edges"]
    assert {e["node"]["username"] for e in every} == {"root", "findme", "other"}
    found = (await root.call(USERS, search="FIND"))["users"]["edges"]
    assert [e["node"]["username"] for e in found] == ["findme"]


async def test_non_admins_cannot_use_admin_fields(app: RunningApp) -> None:
    mallory, victim = await register(app.http), await register(app.http)
    assert await _codes(mallory, USERS) == ["FORBIDDEN"]
    for mutation in (SUSPEND, UNSUSPEND, DELETE):
        assert await _codes(mallory, mutation, u=victim.id) == ["FORBIDDEN"]
    assert (await victim.call(ME))["me"]["id"] == victim.id


async def test_suspension_refuses_logins_ends_sessions_and_closes_sockets(
    server: RunningApp,
) -> None:
    # given a user with an open socket
    assert server.ws_url
    root = await _admin(server)
    alice = await register(server.http, "suspect")
    socket = await websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
    await socket.send(
        json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {alice.token}"}}
        )
    )
    assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "connection_ack"
    # when an administrator suspends her
    suspended = (await root.call(SUSPEND, u=alice.id))["suspendUser"]
    assert suspended["suspendedAt"] is not None
    # then her socket closes, her token and her password stop working
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(socket.recv(), 5)
    assert socket.close_code == 4403
    assert await _codes(alice, ME) == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as login:
        await data(server.http, LOGIN, {"input": {"login": "suspect", "password": PASSWORD}})
    assert login.value.codes == ["UNAUTHENTICATED"]
    # and lifting it lets her log in again
    await root.call(UNSUSPEND, u=alice.id)
    await data(server.http, LOGIN, {"input": {"login": "suspect", "password": PASSWORD}})


async def test_deleting_an_account_keeps_its_messages_without_a_sender(app: RunningApp) -> None:
    root = await _admin(app)
    alice, bob = await register(app.http, "leaving"), await register(app.http)
    conversation_id = (await alice.send("goodbye", to=bob))["conversationId"]
    # deleting by her User id answers her account's id, as `users` lists it
    deleted = (await root.call(DELETE, u=alice.id))["deleteUser"]
    assert deleted == {"deletedUserId": global_id(Kind.USER_ACCOUNT, pk(alice.id))}
    with pytest.raises(GraphQLError) as login:
        await data(app.http, LOGIN, {"input": {"login": "leaving", "password": PASSWORD}})
    assert login.value.codes == ["UNAUTHENTICATED"]
    edges = (await bob.call(HISTORY, id=conversation_id))["conversation"]["messages"]["edges"]
    assert [(e["node"]["body"], e["node"]["sender"]) for e in edges] == [("goodbye", None)]


async def test_admins_cannot_act_on_themselves_other_admins_or_nobody(app: RunningApp) -> None:
    root = await _admin(app)
    other = await _admin(app, "second_root")
    assert await _codes(root, SUSPEND, u=root.id) == ["BAD_USER_INPUT"]
    assert await _codes(root, DELETE, u=other.id) == ["FORBIDDEN"]
    assert await _codes(root, SUSPEND, u=missing(Kind.USER_ACCOUNT)) == ["NOT_FOUND"]


async def test_create_admin_command_creates_the_first_administrator(
    app: RunningApp, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("REDIS_URL", "CHATR_REDIS_URL", "CHATR_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHATR_JWT_SECRET", settings.jwt_secret)
    monkeypatch.setenv("CHATR_ADMIN_PASSWORD", PASSWORD)
    exit_code = await asyncio.to_thread(
        cli.main, ["create-admin", "boss", "--email", "boss@example.com"]
    )
    assert exit_code == 0
    boss = (await data(app.http, LOGIN, {"input": {"login": "boss", "password": PASSWORD}}))[
        "login"
    ]
    roles = await data(app.http, USERS, token=boss["accessToken"])
    assert [e["node"]["role"] for e in roles["users"]["edges"]] == ["ADMIN"]
