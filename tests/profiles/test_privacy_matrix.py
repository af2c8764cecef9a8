"""Privacy: every setting, for every audience, seen from every standing.

Alice shares a detail with EVERYONE, FRIENDS or NOBODY; five people look: alice herself, her
friend bob, carol (a stranger), dave (whom alice blocked) and erin (who blocked alice). The
table below is the rule, written out independently of the implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import update

from chatr.models import User
from chatr.models.base import utcnow
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    SEND_FRIEND_REQUEST,
    Account,
    register,
)
from tests.support.ids import pk
from tests.support.servers import RunningApp

AUDIENCES = ("EVERYONE", "FRIENDS", "NOBODY")
#: Who sees a detail shared with each audience. A block, either way, hides everything.
SEES: dict[str, frozenset[str]] = {
    "EVERYONE": frozenset({"self", "friend", "stranger"}),
    "FRIENDS": frozenset({"self", "friend"}),
    "NOBODY": frozenset({"self"}),
}

PROFILE = """
query Profile($id: ID!) {
  user(id: $id) { firstName lastName gender email phone createdAt presence lastSeenAt }
}
"""
MEMBERS = (
    "query Members($id: ID!) { conversation(id: $id) { members { user { id } lastReadSeq } } }"
)
SET_PRIVACY = """
mutation Privacy($input: PrivacySettingsInput!) { updatePrivacySettings(input: $input) { email } }
"""
UPDATE_PROFILE = """
mutation Profile($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }
"""


@dataclass
class World:
    alice: Account
    #: standing -> the viewer in that standing
    viewers: dict[str, Account]
    #: viewer id -> the direct conversation between alice and that viewer
    conversations: dict[str, str]


@pytest.fixture
async def world(app: RunningApp) -> World:
    alice, bob, carol, dave, erin = [await register(app.http) for _ in range(5)]
    await alice.call(
        UPDATE_PROFILE,
        input={"firstName": "Alice", "lastName": "Liddell", "gender": "FEMALE"},
    )
    async with app.runtime.db.session() as session, session.begin():
        await session.execute(
            update(User)
            .where(User.id == pk(alice.id))
            .values(phone="+4915112345678", last_seen_at=utcnow())
        )
    await bob.call(SEND_FRIEND_REQUEST, u=alice.id)
    await alice.call(ACCEPT_FRIEND_REQUEST, u=bob.id)
    conversations: dict[str, str] = {}
    for viewer in (bob, carol, dave, erin):
        message = await viewer.send("hi alice", to=alice)
        conversations[viewer.id] = message["conversationId"]
        # alice replies, which accepts a stranger's message request (else her receipts would
        # be hidden from the requester whatever her settings) and moves her read marker
        await alice.send("hi", conversation_id=message["conversationId"])
    await alice.call(BLOCK_USER, u=dave.id)
    await erin.call(BLOCK_USER, u=alice.id)
    return World(
        alice,
        {"self": alice, "friend": bob, "stranger": carol, "blocked": dave, "blocker": erin},
        conversations,
    )


async def _profile_value(world: World, viewer: Account, fields: tuple[str, ...]) -> Any:
    profile = (await viewer.call(PROFILE, id=world.alice.id))["user"]
    return tuple(profile[field] for field in fields)


async def _read_receipt(world: World, viewer: Account) -> Any:
    conversation_id = world.conversations.get(viewer.id) or next(iter(world.conversations.values()))
    members = (await viewer.call(MEMBERS, id=conversation_id))["conversation"]["members"]
    (alices,) = [m["lastReadSeq"] for m in members if m["user"]["id"] == world.alice.id]
    return alices


def _profile(*fields: str) -> Callable[[World, Account], Awaitable[Any]]:
    async def observe(world: World, viewer: Account) -> Any:
        return await _profile_value(world, viewer, fields)

    return observe


#: setting -> how a viewer observes it (a value that is all None when hidden)
OBSERVE: dict[str, Callable[[World, Account], Awaitable[Any]]] = {
    "fullName": _profile("firstName", "lastName"),
    "gender": _profile("gender"),
    "email": _profile("email"),
    "phone": _profile("phone"),
    "joinedDate": _profile("createdAt"),
    "readReceipts": _read_receipt,
    "onlineStatus": _profile("presence"),
    "lastSeen": _profile("lastSeenAt"),
}


def _hidden(value: Any) -> bool:
    return value is None or (isinstance(value, tuple) and all(v is None for v in value))


@pytest.mark.parametrize("setting", list(OBSERVE))
async def test_each_audience_shows_the_detail_to_exactly_the_right_viewers(
    world: World, setting: str
) -> None:
    observe = OBSERVE[setting]
    for audience in AUDIENCES:
        await world.alice.call(SET_PRIVACY, input={setting: audience})
        seen_by = set()
        for standing, viewer in world.viewers.items():
            value = await observe(world, viewer)
            if not _hidden(value):
                seen_by.add(standing)
        assert seen_by == SEES[audience], (setting, audience)
