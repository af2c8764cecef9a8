"""The permission table: every group action by every kind of actor, through GraphQL.

Each case builds a fresh group in which the owner (alice) has an admin, a member, a second
admin and a second member to act on, a pending invitee, an outsider she blocked and a former
member she removed; a stranger knows the group's id. The actor performs the action; the
allowed ones succeed, the others are refused and change nothing the owner can see.

Refusals follow the house rule: whoever is not in the group (a stranger, a former member) gets
NOT_FOUND, exactly as for a group that does not exist, so ids cannot be probed; FORBIDDEN is
for those who can see the group but may not do this (a plain member managing it, an invitee
using it before accepting, a member answering an invitation they do not have).

"blocked" is someone the owner blocked: blocking keeps them out (they cannot be invited by
her), so they are refused exactly like a stranger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from tests.groups.helpers import (
    ACCEPT,
    DECLINE,
    DELETE_GROUP,
    DEMOTE,
    HISTORY,
    INVITE,
    LEAVE,
    PROMOTE,
    REMOVE,
    TRANSFER,
    UPDATE_GROUP,
    create_group,
    group,
    history,
)
from tests.support.api import (
    BLOCK_USER,
    MARK_READ,
    SEND,
    SET_TYPING,
    Account,
    graphql,
    register,
)
from tests.support.servers import RunningApp
from tests.support.ws import CONVERSATION_EVENTS, subscribe

ROLES = ("owner", "admin", "member", "pending", "stranger", "blocked", "former")
OK = "ok"
#: Sees the group, may not do this.
NO = "FORBIDDEN"
#: Not in the group: as if there were none.
GONE = "NOT_FOUND"


@dataclass(frozen=True)
class World:
    people: dict[str, Account]  # the six actors by role
    target_member: Account
    target_admin: Account
    newcomer: Account  # not related to the group: someone to invite
    group_id: str


Action = Callable[[World, Account], Awaitable[dict[str, Any]]]


def _call(document: str, variables: Callable[[World], dict[str, Any]]) -> Action:
    async def act(world: World, actor: Account) -> dict[str, Any]:
        return await graphql(actor.http, document, variables(world), token=actor.token)

    return act


ACTIONS: dict[str, Action] = {
    "update details": _call(
        UPDATE_GROUP, lambda w: {"input": {"conversationId": w.group_id, "name": "Taken over"}}
    ),
    "invite": _call(INVITE, lambda w: {"c": w.group_id, "u": [w.newcomer.id]}),
    "kick a member": _call(REMOVE, lambda w: {"c": w.group_id, "u": w.target_member.id}),
    "kick an admin": _call(REMOVE, lambda w: {"c": w.group_id, "u": w.target_admin.id}),
    "promote": _call(PROMOTE, lambda w: {"c": w.group_id, "u": w.target_member.id}),
    "demote": _call(DEMOTE, lambda w: {"c": w.group_id, "u": w.target_admin.id}),
    "transfer ownership": _call(TRANSFER, lambda w: {"c": w.group_id, "u": w.target_member.id}),
    "delete": _call(DELETE_GROUP, lambda w: {"c": w.group_id}),
    "send message": _call(
        SEND,
        lambda w: {
            "input": {"body": "hi", "clientMessageId": "table", "conversationId": w.group_id}
        },
    ),
    "read history": _call(HISTORY, lambda w: {"id": w.group_id}),
    "markRead": _call(MARK_READ, lambda w: {"c": w.group_id, "s": 1}),
    "setTyping": _call(SET_TYPING, lambda w: {"c": w.group_id, "t": True}),
    "accept invite": _call(ACCEPT, lambda w: {"c": w.group_id}),
    "decline invite": _call(DECLINE, lambda w: {"c": w.group_id}),
    "leave": _call(LEAVE, lambda w: {"c": w.group_id}),
}

#: action -> expected answer for (owner, admin, member, pending, stranger, blocked, former).
TABLE: dict[str, tuple[str, ...]] = {
    "update details": (OK, OK, NO, NO, GONE, GONE, GONE),
    "invite": (OK, OK, NO, NO, GONE, GONE, GONE),
    "kick a member": (OK, OK, NO, NO, GONE, GONE, GONE),
    "kick an admin": (OK, NO, NO, NO, GONE, GONE, GONE),
    "promote": (OK, NO, NO, NO, GONE, GONE, GONE),
    "demote": (OK, NO, NO, NO, GONE, GONE, GONE),
    "transfer ownership": (OK, NO, NO, NO, GONE, GONE, GONE),
    "delete": (OK, NO, NO, NO, GONE, GONE, GONE),
    "send message": (OK, OK, OK, NO, GONE, GONE, GONE),
    "read history": (OK, OK, OK, NO, GONE, GONE, GONE),
    "markRead": (OK, OK, OK, NO, GONE, GONE, GONE),
    "setTyping": (OK, OK, OK, NO, GONE, GONE, GONE),
    "subscribe to conversationEvents": (OK, OK, OK, NO, GONE, GONE, GONE),
    "accept invite": (NO, NO, NO, OK, GONE, GONE, GONE),
    "decline invite": (NO, NO, NO, OK, GONE, GONE, GONE),
    "leave": (OK, OK, OK, NO, GONE, GONE, GONE),
}
SUBSCRIBE = "subscribe to conversationEvents"


def _cases(*, subscriptions: bool) -> list[Any]:
    return [
        pytest.param(action, role, expected, id=f"{action}-{role}")
        for action, row in TABLE.items()
        if (action == SUBSCRIBE) == subscriptions
        for role, expected in zip(ROLES, row, strict=True)
    ]


def test_the_table_covers_every_action_and_role() -> None:
    assert set(TABLE) == {*ACTIONS, SUBSCRIBE}
    assert all(len(row) == len(ROLES) for row in TABLE.values())


async def _world(app: RunningApp) -> World:
    people = await asyncio.gather(*(register(app.http) for _ in range(10)))
    owner, admin, member, pending, stranger, blocked, former, *others = people
    target_member, target_admin, newcomer = others
    created = await create_group(
        owner, invitees=[admin, member, target_member, target_admin, pending, former]
    )
    group_id = created["id"]
    await asyncio.gather(
        *(
            account.call(ACCEPT, c=group_id)
            for account in (admin, member, target_member, target_admin, former)
        ),
        owner.call(BLOCK_USER, u=blocked.id),
    )
    for account in (admin, target_admin):
        await owner.call(PROMOTE, c=group_id, u=account.id)
    await former.send("before I was removed", conversation_id=group_id)
    await owner.call(REMOVE, c=group_id, u=former.id)
    await owner.send("welcome", conversation_id=group_id)
    actors = (owner, admin, member, pending, stranger, blocked, former)
    by_role = dict(zip(ROLES, actors, strict=True))
    return World(by_role, target_member, target_admin, newcomer, group_id)


async def _owner_view(world: World) -> dict[str, Any]:
    owner = world.people["owner"]
    return {
        "group": await group(owner, world.group_id),
        "history": await history(owner, world.group_id),
    }


@pytest.mark.parametrize(("action", "role", "expected"), _cases(subscriptions=False))
async def test_group_permission(app: RunningApp, action: str, role: str, expected: str) -> None:
    # given
    world = await _world(app)
    before = await _owner_view(world)
    # when
    body = await ACTIONS[action](world, world.people[role])
    # then
    if expected == OK:
        assert not body.get("errors"), body["errors"]
        assert all(value is not None for value in body["data"].values())
    else:
        codes = [error["extensions"]["code"] for error in body.get("errors") or []]
        assert codes == [expected], body
        assert body["data"] is None
        assert await _owner_view(world) == before


@pytest.mark.parametrize(("action", "role", "expected"), _cases(subscriptions=True))
async def test_group_subscription_permission(
    server: RunningApp, action: str, role: str, expected: str
) -> None:
    # given
    assert server.ws_url
    world = await _world(server)
    actor = world.people[role]
    # when the actor subscribes from the start of the history
    async with subscribe(
        server.ws_url, actor.token, CONVERSATION_EVENTS, {"id": world.group_id, "afterSeq": 0}
    ) as feed:
        try:
            first = await feed.next()
        except TransportQueryError as error:
            refusal: TransportQueryError | None = error
        else:
            refusal = None
    # then members get the group's first event since they are in it (the owner's creating
    # it, anyone else's own joining), everyone else a refusal before any event
    if expected == OK:
        assert refusal is None
        assert first["conversationId"] == world.group_id
        assert first["message"]["sender"] == {"id": actor.id}
        assert role != "owner" or first["message"]["seq"] == 1
    else:
        assert refusal is not None
        assert [e["extensions"]["code"] for e in refusal.errors or []] == [expected]
