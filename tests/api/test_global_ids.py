"""Global object identification (the Relay spec): one opaque id per object across the schema,
a `Node` interface on every type with identity, and `node(id:)` / `nodes(ids:)` that find an
object again only for whoever may see it through its own field.

Ids have one spelling each: anything else (padding, whitespace, a plain number, another
kind's id) is BAD_USER_INPUT on every ID argument, never an internal error.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from chatr import global_ids, security
from chatr.errors import BadUserInput
from chatr.services import admin, nodes
from tests.media import helpers as media
from tests.support.api import LOGIN, PASSWORD, Account, data, graphql, register
from tests.support.ids import Kind, global_id, kind_of, missing, pk
from tests.support.servers import RunningApp

NODE = "query Node($id: ID!) { node(id: $id) { __typename id } }"
NODES = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
TYPES = """
query {
  __schema {
    types {
      name kind interfaces { name } possibleTypes { name }
      fields { name type { kind name ofType { kind name } } }
    }
  }
}
"""
SESSIONS = "query { mySessions { id current } }"
CREATE_GROUP = """
mutation Create($input: CreateGroupInput!) { createGroup(input: $input) { id } }
"""
ASK = "mutation Ask($u: ID!) { sendFriendRequest(userId: $u) { id } }"
ACCEPT_FRIEND = "mutation Accept($u: ID!) { acceptFriendRequest(userId: $u) { id state } }"
REMOVE_FRIEND = "mutation Remove($u: ID!) { removeFriend(userId: $u) { id } }"
FRIENDSHIP_NODE = """
query Friendship($id: ID!) {
  node(id: $id) { __typename id ... on Friendship { state requestedByMe user { id } } }
}
"""
REQUEST_IDS = """
query {
  incomingFriendRequests { edges { node { id } } }
  outgoingFriendRequests { edges { node { id } } }
  friends { edges { node { id } } }
}
"""
MY_INVITES = "query { myGroupInvites { id conversationId invitee { id } } }"
INVITE_NODE = """
query Invite($id: ID!) {
  node(id: $id) { __typename id ... on GroupInvite { conversationId invitee { id } } }
}
"""
ACCEPT_INVITE = "mutation($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }"
DECLINE_INVITE = "mutation($c: ID!) { declineGroupInvite(conversationId: $c) { conversationId } }"
LEAVE_GROUP = "mutation($c: ID!) { leaveGroup(conversationId: $c) { conversationId } }"


# -- the encoding ---------------------------------------------------------------------------


def test_an_id_round_trips_to_its_kind_and_key() -> None:
    for kind in Kind:
        for key in (1, 7, 10**6, global_ids.MAX_PK):
            assert global_ids.decode(global_ids.encode(kind, key), kind) == key
            assert global_ids.parse(global_ids.encode(kind, key)) == (kind, key)


def test_ids_of_different_kinds_never_collide() -> None:
    spelled = [global_ids.encode(kind, key) for kind in Kind for key in range(1, 200)]
    assert len(set(spelled)) == len(spelled)


def test_an_id_is_url_safe_and_unpadded() -> None:
    for kind in Kind:
        value = global_ids.encode(kind, 2**62 + 3)
        assert "=" not in value and "+" not in value and "/" not in value
        assert len(value) <= global_ids.MAX_LENGTH


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("1", id="a-plain-key"),
        pytest.param("42", id="another-plain-key"),
        pytest.param(_raw("User:1") + "=", id="padded"),
        pytest.param(base64.b64encode(b"Conversation:1").decode(), id="standard-padding"),
        pytest.param(" " + _raw("User:1"), id="leading-space"),
        pytest.param(_raw("User:1") + "\n", id="trailing-newline"),
        pytest.param(_raw("User:01"), id="leading-zero"),
        pytest.param(_raw("User:+1"), id="signed-key"),
        pytest.param(_raw("User:-1"), id="negative-key"),
        pytest.param(_raw("User:0"), id="zero-key"),
        pytest.param(_raw(f"User:{2**63}"), id="key-beyond-bigint"),
        pytest.param(_raw("User: 1"), id="space-in-key"),
        pytest.param(_raw("user:1"), id="unknown-kind-spelling"),
        pytest.param(_raw("Nobody:1"), id="unknown-kind"),
        pytest.param(_raw("User"), id="no-key"),
        pytest.param(_raw("User:1:2"), id="two-keys"),
        pytest.param("VXNlcjox" + "A" * 80, id="too-long"),
        pytest.param("VXNlcjoxMh", id="non-canonical-trailing-bits"),
        pytest.param("VXNlc+jox", id="standard-alphabet"),
        pytest.param("VXNlcjox\u00e9", id="non-ascii"),
    ],
)
def test_anything_but_the_one_spelling_is_refused(value: str) -> None:
    assert global_ids.parse(value) is None
    with pytest.raises(BadUserInput) as refused:
        global_ids.decode(value, Kind.USER, field="userId")
    assert refused.value.extensions["field"] == "userId"


def test_the_trailing_bits_case_really_is_another_spelling_of_a_valid_id() -> None:
    # "User:12" is 7 bytes: its last base64 character carries 2 bits a lenient decoder ignores
    assert global_ids.encode(Kind.USER, 12) == "VXNlcjoxMg"
    assert base64.urlsafe_b64decode("VXNlcjoxMh==") == b"User:12"
    assert global_ids.parse("VXNlcjoxMh") is None


def test_an_id_of_another_kind_is_refused_naming_the_wanted_kind() -> None:
    with pytest.raises(BadUserInput) as refused:
        global_ids.decode(global_ids.encode(Kind.MESSAGE, 1), Kind.CONVERSATION, field="c")
    assert "Conversation" in refused.value.message


def test_every_kind_has_a_node_fetcher() -> None:
    assert set(nodes.FETCHERS) == set(Kind)


# -- the schema -----------------------------------------------------------------------------


def _is_id(field: dict[str, Any]) -> bool:
    kind = field["type"]
    return kind["kind"] == "NON_NULL" and kind["ofType"] == {"kind": "SCALAR", "name": "ID"}


async def test_every_type_with_an_id_implements_node_and_has_its_own_kind(
    app: RunningApp,
) -> None:
    # given the schema as the running API describes itself
    types = (await data(app.http, TYPES))["__schema"]["types"]
    objects = [t for t in types if t["kind"] == "OBJECT" and not t["name"].startswith("__")]
    with_id = {
        t["name"] for t in objects if any(f["name"] == "id" and _is_id(f) for f in t["fields"])
    }
    # then each of them implements Node, and nothing else does
    implementing = {t["name"] for t in objects if {"name": "Node"} in t["interfaces"]}
    assert with_id == implementing
    (node,) = [t for t in types if t["name"] == "Node"]
    assert {t["name"] for t in node["possibleTypes"]} == with_id
    # and each has a kind of its own, which names it
    assert {kind.value for kind in Kind} == with_id


# -- ID arguments ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each world signs up four people and signs in twice more: at its defaults argon2 is
    most of the module's time, and who may see what does not depend on it."""
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@dataclass(frozen=True)
class World:
    alice: Account
    bob: Account  # alice's contact: the other member of her conversation
    mallory: Account  # a stranger to all of it
    root: Account  # an administrator
    conversation_id: str
    message_id: str
    session_id: str  # alice's other device
    upload_id: str  # alice's upload, not used yet
    attachment_id: str  # the attachment of alice's media message to bob
    media_message_id: str  # that message
    friendship_id: str  # alice's friend request to bob, not answered yet
    invite_id: str  # bob's invitation to alice's group, not answered yet

    def owners(self) -> dict[Kind, tuple[Account, str]]:
        """For each kind, someone who may see the object, and its id."""
        return {
            Kind.USER: (self.alice, self.alice.id),
            Kind.CONVERSATION: (self.alice, self.conversation_id),
            Kind.MESSAGE: (self.bob, self.message_id),
            Kind.SESSION: (self.alice, self.session_id),
            Kind.USER_ACCOUNT: (self.root, global_id(Kind.USER_ACCOUNT, pk(self.alice.id))),
            Kind.UPLOAD: (self.alice, self.upload_id),
            Kind.ATTACHMENT: (self.bob, self.attachment_id),
            Kind.FRIENDSHIP: (self.alice, self.friendship_id),
            Kind.GROUP_INVITE: (self.bob, self.invite_id),
        }


async def _sign_in(app: RunningApp, account: Account) -> Account:
    payload = (
        await data(app.http, LOGIN, {"input": {"login": account.username, "password": PASSWORD}})
    )["login"]
    return Account(
        app.http,
        payload["user"]["id"],
        account.username,
        payload["accessToken"],
        payload["refreshToken"],
    )


async def _world(app: RunningApp) -> World:
    alice, bob, mallory = [await register(app.http) for _ in range(3)]
    await admin.create_admin(app.runtime, username="root", password=PASSWORD)
    root = await _sign_in(app, Account(app.http, "", "root", "", ""))
    first = await alice.send("hi bob", to=bob)
    other_device = await _sign_in(app, alice)
    sessions = (await alice.call(SESSIONS))["mySessions"]
    (session_id,) = [s["id"] for s in sessions if not s["current"]]
    assert other_device.token != alice.token
    png = media.png()
    sent = await media.upload(alice, png, kind="IMAGE", content_type="image/png", name="a.png")
    message = await media.send_media(alice, [sent], conversation_id=first["conversationId"])
    pending = await media.upload(alice, png, kind="IMAGE", content_type="image/png", name="b.png")
    asked = (await alice.call(ASK, u=bob.id))["sendFriendRequest"]
    await alice.call(CREATE_GROUP, input={"name": "g", "inviteeIds": [bob.id]})
    (invite,) = (await bob.call(MY_INVITES))["myGroupInvites"]
    return World(
        alice,
        bob,
        mallory,
        root,
        conversation_id=first["conversationId"],
        message_id=first["id"],
        session_id=session_id,
        upload_id=pending,
        attachment_id=message["attachments"][0]["id"],
        media_message_id=message["id"],
        friendship_id=asked["id"],
        invite_id=invite["id"],
    )


def _codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


BAD_IDS = {
    "garbage": "not an id",
    "integer": "1",
    "padded": global_id(Kind.CONVERSATION, 1) + "==",
    "with-whitespace": " " + global_id(Kind.CONVERSATION, 1),
}


@pytest.mark.parametrize("spelling", sorted(BAD_IDS))
async def test_an_id_that_is_not_one_is_bad_user_input_on_every_kind_of_argument(
    app: RunningApp, spelling: str
) -> None:
    # given someone signed in, and a string that is no chatr id
    alice, bob = await register(app.http), await register(app.http)
    bad = BAD_IDS[spelling]
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("query($id: ID!) { conversation(id: $id) { id } }", {"id": bad}, "id"),
        ("query($id: ID!) { user(id: $id) { id } }", {"id": bad}, "id"),
        ("mutation($id: ID!) { revokeSession(id: $id) { revokedSessionId } }", {"id": bad}, "id"),
        (
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            {"i": {"body": "x", "clientMessageId": "c1", "recipientId": bad}},
            "recipientId",
        ),
        (
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            {"i": {"body": "x", "clientMessageId": "c2", "recipientId": bob.id, "replyToId": bad}},
            "replyToId",
        ),
        (CREATE_GROUP, {"input": {"name": "g", "inviteeIds": [bob.id, bad]}}, "inviteeIds"),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": bad}, "id"),
        ("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [alice.id, bad]}, "ids"),
    ]
    for document, variables, field in calls:
        # when it is passed where an id goes
        body = await graphql(app.http, document, variables, token=alice.token)
        # then the answer is BAD_USER_INPUT naming the argument, not an internal error
        assert _codes(body) == ["BAD_USER_INPUT"], (document, body)
        assert body["errors"][0]["extensions"]["field"] == field, body


async def test_an_integer_literal_is_bad_user_input(app: RunningApp) -> None:
    alice = await register(app.http)
    body = await graphql(app.http, "{ conversation(id: 1) { id } }", token=alice.token)
    assert _codes(body) == ["BAD_USER_INPUT"]
    body = await graphql(
        app.http, "query($id: ID!) { user(id: $id) { id } }", {"id": 1}, token=alice.token
    )
    assert _codes(body) == ["BAD_USER_INPUT"]


async def test_an_id_of_the_wrong_kind_is_bad_user_input(app: RunningApp) -> None:
    # given alice's conversation with bob, and the ids of its message and of alice
    alice, bob = await register(app.http), await register(app.http)
    message = await alice.send("hi", to=bob)
    wrong = [
        ("query($id: ID!) { conversation(id: $id) { id } }", {"id": message["id"]}),
        ("query($id: ID!) { conversation(id: $id) { id } }", {"id": alice.id}),
        ("query($id: ID!) { user(id: $id) { id } }", {"id": message["conversationId"]}),
        (
            'mutation($m: ID!) { editMessage(messageId: $m, body: "x") { id } }',
            {"m": message["conversationId"]},
        ),
        (
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            {"i": {"body": "x", "clientMessageId": "c", "conversationId": bob.id}},
        ),
        ("mutation($id: ID!) { revokeSession(id: $id) { revokedSessionId } }", {"id": alice.id}),
    ]
    for document, variables in wrong:
        body = await graphql(app.http, document, variables, token=alice.token)
        # then: BAD_USER_INPUT, and nothing happened
        assert _codes(body) == ["BAD_USER_INPUT"], (document, body)
        assert "must be the id of a" in body["errors"][0]["message"]


async def test_the_ids_the_api_answers_with_are_the_ones_it_takes(app: RunningApp) -> None:
    # given a message alice sent bob, seen through several fields that show ids
    alice, bob = await register(app.http), await register(app.http)
    message = await alice.send("hi", to=bob)
    found = await alice.call(
        """query($id: ID!) { conversation(id: $id) {
             id messages(first: 1) { edges { node { id conversationId sender { id } } } }
           } }""",
        id=message["conversationId"],
    )
    node = found["conversation"]["messages"]["edges"][0]["node"]
    # then every one is the global id of its kind, and distinct from the others
    assert node == {
        "id": message["id"],
        "conversationId": found["conversation"]["id"],
        "sender": {"id": alice.id},
    }
    assert global_ids.parse(message["id"]) == (Kind.MESSAGE, pk(message["id"]))
    assert global_ids.parse(alice.id) == (Kind.USER, pk(alice.id))
    assert global_ids.parse(node["conversationId"]) == (
        Kind.CONVERSATION,
        pk(node["conversationId"]),
    )
    assert len({message["id"], alice.id, node["conversationId"]}) == 3


# -- node and nodes -------------------------------------------------------------------------


async def _node_as(account: Account, document: str, value: str) -> Any:
    body = await graphql(account.http, document, {"id": value}, token=account.token)
    assert not body.get("errors"), body
    return body["data"]["node"]


async def _node(account: Account, value: str) -> Any:
    body = await graphql(account.http, NODE, {"id": value}, token=account.token)
    assert not body.get("errors"), body
    return body["data"]["node"]


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.value)
async def test_node_finds_each_kind_for_whoever_may_see_it(app: RunningApp, kind: Kind) -> None:
    # given an object of this kind and someone who may see it through its own field
    world = await _world(app)
    owner, value = world.owners()[kind]
    # when they ask for it by id
    found = await _node(owner, value)
    # then they get the same object, as the type its id came from
    assert found == {"__typename": kind.value, "id": value}
    # and `nodes` agrees, in order, with a missing id answered as null
    body = await graphql(app.http, NODES, {"ids": [value, missing(kind)]}, token=owner.token)
    assert body == {"data": {"nodes": [found, None]}}


@pytest.mark.parametrize(
    "kind", [kind for kind in Kind if kind is not Kind.USER], ids=lambda kind: kind.value
)
async def test_node_answers_a_stranger_null_exactly_as_for_a_missing_id(
    app: RunningApp, kind: Kind
) -> None:
    # given someone else's object of this kind, and mallory who knows its id
    world = await _world(app)
    _owner, value = world.owners()[kind]
    # when she asks for it, and for an id of the same kind that names nothing
    theirs = await graphql(app.http, NODE, {"id": value}, token=world.mallory.token)
    nothing = await graphql(app.http, NODE, {"id": missing(kind)}, token=world.mallory.token)
    # then both answers are null without an error: nothing tells the two apart
    assert theirs == nothing == {"data": {"node": None}}


async def test_a_user_is_a_node_for_anyone_signed_in_unless_suspended(app: RunningApp) -> None:
    # given alice, and mallory who is a stranger to her (user(id:) shows anyone's profile)
    world = await _world(app)
    found = await _node(world.mallory, world.alice.id)
    assert found == {"__typename": "User", "id": world.alice.id}
    # when an administrator suspends her, she is nobody's node any more (as for user(id:))
    await world.root.call("mutation($u: ID!) { suspendUser(userId: $u) { id } }", u=world.alice.id)
    assert await _node(world.mallory, world.alice.id) is None
    assert await _node(world.bob, world.alice.id) is None


async def test_an_account_as_administrators_see_it_is_its_own_node(app: RunningApp) -> None:
    # given alice's User id and her UserAccount id (two kinds for one row)
    world = await _world(app)
    account_id = global_id(Kind.USER_ACCOUNT, pk(world.alice.id))
    users = await world.root.call("{ users(first: 10) { edges { node { id username } } } }")
    listed = {e["node"]["username"]: e["node"]["id"] for e in users["users"]["edges"]}
    assert listed[world.alice.username] == account_id != world.alice.id
    # then each id finds its own type again, and the account only for an administrator
    assert await _node(world.root, account_id) == {"__typename": "UserAccount", "id": account_id}
    assert await _node(world.root, world.alice.id) == {"__typename": "User", "id": world.alice.id}
    assert await _node(world.alice, account_id) is None
    # and an administrator's mutations take either id
    done = await world.root.call(
        "mutation($u: ID!) { suspendUser(userId: $u) { id } }", u=world.alice.id
    )
    assert done == {"suspendUser": {"id": account_id}}


async def test_an_upload_is_a_node_only_while_unused(app: RunningApp) -> None:
    world = await _world(app)
    upload = await graphql(
        app.http,
        "query($id: ID!) { node(id: $id) { ... on UploadTicket { id method url } } }",
        {"id": world.upload_id},
        token=world.alice.token,
    )
    assert upload["data"]["node"]["id"] == world.upload_id
    assert upload["data"]["node"]["method"] == "PUT"
    # once sent, it is the message's attachment, no longer an upload to send bytes to
    await media.send_media(world.alice, [world.upload_id], to=world.bob, client_id="media-2")
    assert await _node(world.alice, world.upload_id) is None


async def test_an_attachment_is_a_node_only_through_a_message_the_viewer_sees(
    app: RunningApp,
) -> None:
    world = await _world(app)
    found = await graphql(
        app.http,
        "query($id: ID!) { node(id: $id) { ... on Attachment { id kind url } } }",
        {"id": world.attachment_id},
        token=world.bob.token,
    )
    assert found["data"]["node"]["kind"] == "IMAGE"
    assert found["data"]["node"]["url"]
    assert await _node(world.mallory, world.attachment_id) is None
    # once bob deletes the message for himself he no longer sees what it carried
    await world.bob.call(
        "mutation($m: ID!) { deleteMessageForMe(messageId: $m) { messageId } }",
        m=world.media_message_id,
    )
    assert await _node(world.bob, world.attachment_id) is None
    assert (await _node(world.alice, world.attachment_id))["id"] == world.attachment_id


async def test_a_former_member_no_longer_finds_the_group_or_its_messages(
    app: RunningApp,
) -> None:
    # given a group bob was in and posted to, then left
    alice, bob = await register(app.http), await register(app.http)
    group = (await alice.call(CREATE_GROUP, input={"name": "g", "inviteeIds": [bob.id]}))[
        "createGroup"
    ]["id"]
    await bob.call("mutation($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }", c=group)
    posted = await bob.send("hello all", conversation_id=group)
    assert await _node(bob, group) == {"__typename": "Conversation", "id": group}
    left = await bob.call(
        "mutation($c: ID!) { leaveGroup(conversationId: $c) { conversationId } }", c=group
    )
    assert left == {"leaveGroup": {"conversationId": group}}
    # then neither the group nor even his own message there is his to find
    assert await _node(bob, group) is None
    assert await _node(bob, posted["id"]) is None
    assert await _node(alice, posted["id"]) == {"__typename": "Message", "id": posted["id"]}


def _request_ids(lists: dict[str, Any]) -> dict[str, list[str]]:
    return {name: [e["node"]["id"] for e in found["edges"]] for name, found in lists.items()}


async def test_a_friendship_is_a_node_for_its_two_people_from_request_to_removal(
    app: RunningApp,
) -> None:
    # given alice asked bob to be friends, and mallory knows the request's id
    alice, bob, mallory = [await register(app.http) for _ in range(3)]
    request_id = (await alice.call(ASK, u=bob.id))["sendFriendRequest"]["id"]
    assert kind_of(request_id) is Kind.FRIENDSHIP
    assert _request_ids(await bob.call(REQUEST_IDS))["incomingFriendRequests"] == [request_id]
    # then each of the two finds it, seen from their side, and mallory finds nothing
    assert await _node_as(alice, FRIENDSHIP_NODE, request_id) == {
        "__typename": "Friendship",
        "id": request_id,
        "state": "REQUESTED",
        "requestedByMe": True,
        "user": {"id": bob.id},
    }
    assert (await _node_as(bob, FRIENDSHIP_NODE, request_id))["user"] == {"id": alice.id}
    assert await _node(mallory, request_id) is None
    # when bob accepts, it is the same object, now a friendship
    accepted = (await bob.call(ACCEPT_FRIEND, u=alice.id))["acceptFriendRequest"]
    assert accepted == {"id": request_id, "state": "ACCEPTED"}
    assert _request_ids(await alice.call(REQUEST_IDS))["friends"] == [request_id]
    assert (await _node_as(alice, FRIENDSHIP_NODE, request_id))["state"] == "ACCEPTED"
    assert await _node(mallory, request_id) is None
    # and once it ends, it is nobody's
    await alice.call(REMOVE_FRIEND, u=bob.id)
    assert await _node(alice, request_id) is None
    assert await _node(bob, request_id) is None


async def test_a_group_invite_is_a_node_for_the_invitee_and_the_groups_members_while_it_waits(
    app: RunningApp,
) -> None:
    # given alice's group, bob in it, carol and dave invited, and mallory outside it
    alice, bob, carol, dave, mallory = [await register(app.http) for _ in range(5)]
    invitees = [bob.id, carol.id, dave.id]
    group = (await alice.call(CREATE_GROUP, input={"name": "g", "inviteeIds": invitees}))[
        "createGroup"
    ]["id"]
    await bob.call(ACCEPT_INVITE, c=group)
    (carols,) = (await carol.call(MY_INVITES))["myGroupInvites"]
    (daves,) = (await dave.call(MY_INVITES))["myGroupInvites"]
    assert kind_of(carols["id"]) is Kind.GROUP_INVITE
    expected = {
        "__typename": "GroupInvite",
        "id": carols["id"],
        "conversationId": group,
        "invitee": {"id": carol.id},
    }
    # then the invitee and the group's members find it; another invitee and mallory do not
    for who in (carol, alice, bob):
        assert await _node_as(who, INVITE_NODE, carols["id"]) == expected, who.username
    assert await _node(dave, carols["id"]) is None
    assert await _node(mallory, carols["id"]) is None
    # when bob leaves, it is not his to find any more
    await bob.call(LEAVE_GROUP, c=group)
    assert await _node(bob, carols["id"]) is None
    # and once answered, accepted or declined, an invitation is nobody's
    await carol.call(ACCEPT_INVITE, c=group)
    await dave.call(DECLINE_INVITE, c=group)
    for who in (alice, carol, dave):
        assert await _node(who, carols["id"]) is None
        assert await _node(who, daves["id"]) is None


async def test_nodes_mixes_kinds_in_order(app: RunningApp) -> None:
    world = await _world(app)
    ids = [world.conversation_id, world.alice.id, world.message_id, world.session_id]
    body = await graphql(app.http, NODES, {"ids": ids}, token=world.alice.token)
    found = body["data"]["nodes"]
    assert [n["__typename"] for n in found] == ["Conversation", "User", "Message", "Session"]
    assert [n["id"] for n in found] == ids
    stranger = await graphql(app.http, NODES, {"ids": ids}, token=world.mallory.token)
    assert stranger["data"]["nodes"] == [None, found[1], None, None]


async def test_nodes_is_bounded(app: RunningApp) -> None:
    alice = await register(app.http)
    at_most = [alice.id] * nodes.MAX_NODES
    body = await graphql(app.http, NODES, {"ids": at_most}, token=alice.token)
    assert len(body["data"]["nodes"]) == nodes.MAX_NODES
    body = await graphql(app.http, NODES, {"ids": [*at_most, alice.id]}, token=alice.token)
    assert _codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["maxIds"] == nodes.MAX_NODES


async def test_node_needs_a_signed_in_viewer(app: RunningApp) -> None:
    alice = await register(app.http)
    body = await graphql(app.http, NODE, {"id": alice.id})
    assert _codes(body) == ["UNAUTHENTICATED"]


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def _guide_example() -> str:
    """The graphql example of the client guide's section on global ids."""
    section = GUIDE.read_text().split("\n## Global ids and `node(id:)`\n", 1)[1]
    found = re.search(r"```graphql\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert found, "no graphql example under '## Global ids and `node(id:)`'"
    return found.group(1)


async def test_the_client_guides_refetch_example_runs_as_written(app: RunningApp) -> None:
    # given the guide's `node(id:)` example, and a conversation and a message of alice's
    example = _guide_example()
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("see you", to=bob)
    # when she runs it with each id
    conversation = await alice.call(example, id=sent["conversationId"])
    message = await alice.call(example, id=sent["id"])
    # then each comes back as its own type, with the fields its fragment asks for
    assert conversation["node"] == {
        "__typename": "Conversation",
        "id": sent["conversationId"],
        "name": None,
        "lastSeq": 1,
    }
    assert message["node"] == {
        "__typename": "Message",
        "id": sent["id"],
        "seq": 1,
        "body": "see you",
    }
