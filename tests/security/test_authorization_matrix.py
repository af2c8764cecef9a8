"""Authorization matrix: a stranger, and a former member, aim every root field that takes an ID
at someone else's.

The owner (alice) has a direct conversation with her friend bob, two signed-in devices, a friend
request waiting for her answer and a block; a stranger (mallory) who is related to none of it
but knows every id calls each field with the owner's ids. She is refused (NOT_FOUND for any
conversation or group: one that exists but is not hers is answered like one that does not, so
ids cannot be probed), the response holds nothing, and the owner sees exactly what she saw
before.

The second standing is the former member: frank was in alice's group, posted there and was
removed (or left). Every field that takes a conversation id has a `former` case aimed at that
group: he gets NOT_FOUND and nothing posted after he left (the group's new name, description,
messages, members). Former members see nothing of the group at all, not even what they saw
while they were in it. The same holds through nested selections: every field of the schema
that leads to a `Conversation` (a message's `conversation`, mutation payloads, the inbox) has
an entry in PATHS_TO_A_CONVERSATION, and `test_every_path_to_a_conversation_has_a_probe`
fails for a new one without.

A few fields legitimately take anybody's id: asking someone to be friends, blocking them,
writing them a direct message. Their entries say `kind=PUBLIC_TARGET`; the call works, and the
test shows what it answers reaches nothing private of the owner's.

`node(id:)` and `nodes(ids:)` take anybody's id of any kind by design; what is not the
caller's they answer with null, exactly as for an id that names nothing (an error would tell
the two apart). `test_node_over_every_kind_for_owner_and_stranger` aims them at an object of
every `Node` type: its owner finds it (for a friendship, one of its two people; for a group
invitation, the invitee), the stranger and the person alice blocked get null (a `User`
excepted: anyone signed in sees a profile, as through `user(id:)`; a suspended one is null for
everybody).

The list of fields comes from introspection, so a new field (or a new ID argument of a field,
inside input objects too) without an entry in MATRIX fails
`test_every_field_that_takes_an_id_has_an_entry`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from gql.transport.exceptions import TransportQueryError
from graphql import OperationDefinitionNode, parse
from sqlalchemy import update

from chatr import security
from chatr.models import User
from chatr.models.base import utcnow
from chatr.services import admin
from tests.media import helpers as media
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    CANCEL_FRIEND_REQUEST,
    DECLINE_FRIEND_REQUEST,
    LOGIN,
    MARK_DELIVERED,
    MARK_READ,
    PASSWORD,
    REMOVE_FRIEND,
    SET_TYPING,
    UNBLOCK_USER,
    Account,
    data,
    graphql,
    register,
)
from tests.support.ids import Kind, global_id, missing, pk
from tests.support.servers import RunningApp
from tests.support.ws import CONVERSATION_EVENTS, subscribe

#: What a stranger may be told about someone else's things.
REFUSED = frozenset({"FORBIDDEN", "NOT_FOUND"})
#: What anyone who is not a member is told about a conversation or group: the same as for an
#: id that does not exist.
NOT_YOURS = frozenset({"NOT_FOUND"})
#: What a user who is not an administrator is told by an administrators-only field.
ADMINS_ONLY = frozenset({"FORBIDDEN"})
#: The entry's field must refuse the stranger.
PRIVATE = "private"
#: The field takes anybody's id on purpose; the entry shows it reaches nothing private.
PUBLIC_TARGET = "public-target"

# Only the field, its arguments and one `__Type` chain deep enough for `[ID!]!`: the full
# standard introspection query is deeper than the API's depth limit.
ROOT_FIELD_ARGUMENTS = """
query RootFieldArguments {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types {
      kind
      name
      fields { name args { name type { ...TypeRef } } }
      inputFields { name type { ...TypeRef } }
    }
  }
}
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { name } } } }
"""

#: What the fields that take a message id could change about a message.
MESSAGE_STATE = """
  editedAt deletedAt pinnedAt forwarded editHistory { body } reactions { emoji count }
  replyTo { messageId } mentions { id } starred
"""
# Everything of the owner's that some field of the matrix refers to, as she sees it.
OWNER_VIEW = """
query OwnerView($conversation: ID!, $group: ID!) {
  conversation(id: $conversation) {
    lastSeq
    members { user { id } lastReadSeq lastDeliveredSeq }
    messages(first: 100) { edges { node { seq body sender { id } ${MESSAGE_STATE} } } }
    pinnedMessages { id }
  }
  group: conversation(id: $group) {
    name description avatarUrl coverUrl lastSeq
    members { user { id } role lastReadSeq }
    invitedMembers { user { id } }
    messages(first: 100) { edges { node { seq kind body sender { id } ${MESSAGE_STATE} } } }
    pinnedMessages { id }
  }
  starredMessages(first: 100) { edges { node { id } } }
  myGroupInvites { name invitedBy { id } }
  friends { edges { node { user { id } } } }
  incomingFriendRequests { edges { node { user { id } } } }
  outgoingFriendRequests { edges { node { user { id } } } }
  blockedUsers { edges { node { user { id } } } }
  mySessions { id }
  me { emailVerified twoFactorEnabled }
}
""".replace("${MESSAGE_STATE}", MESSAGE_STATE)
SESSIONS = "query { mySessions { id current } }"
RELATION_IDS = """
query { friends { edges { node { id } } } incomingFriendRequests { edges { node { id } } } }
"""
MY_INVITE_IDS = "query { myGroupInvites { id } }"

# The stranger's documents. Each selects whatever would show a leak if the call went through.
CONVERSATION = """
query Conversation($id: ID!) {
  conversation(id: $id) {
    id lastSeq members { user { id } } messages(first: 100) { edges { node { body } } }
  }
}
"""
SEND_MESSAGE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    seq body conversationId
    conversation {
      id lastSeq
      members { user { id } }
      messages(first: 100) { edges { node { seq body sender { id } } } }
    }
  }
}
"""
REVOKE_SESSION = """
mutation Revoke($id: ID!) {
  revokeSession(id: $id) { revokedSessionId sessions { id deviceLabel } }
}
"""
WATCH_PRESENCE = """
subscription Watch($ids: [ID!]!) {
  presenceChanged(userIds: $ids) { user { id email privacySettings { email } } status }
}
"""
ACCEPT_MESSAGE_REQUEST = """
mutation Accept($c: ID!) { acceptMessageRequest(conversationId: $c) { id status lastSeq } }
"""
DECLINE_MESSAGE_REQUEST = """
mutation Decline($c: ID!) { declineMessageRequest(conversationId: $c) { conversationId } }
"""
PROFILE = """
query Profile($id: ID!) {
  user(id: $id) { id email phone emailVerified twoFactorEnabled privacySettings { email } }
}
"""
ASK_TO_BE_FRIENDS = """
mutation Ask($u: ID!) {
  sendFriendRequest(userId: $u) {
    state requestedByMe acceptedAt user { id emailVerified twoFactorEnabled }
  }
}
"""
BLOCK = "mutation Block($u: ID!) { blockUser(userId: $u) { user { id emailVerified } } }"
SUSPEND_USER = "mutation Suspend($u: ID!) { suspendUser(userId: $u) { id email suspendedAt } }"
UNSUSPEND_USER = (
    "mutation Unsuspend($u: ID!) { unsuspendUser(userId: $u) { id email suspendedAt } }"
)
DELETE_USER = "mutation Delete($u: ID!) { deleteUser(userId: $u) { deletedUserId } }"
# Groups: each selects the group as far as the answer could show it.
GROUP_SELECTION = """
  id name description lastSeq myRole
  members { user { id } role } invitedMembers { user { id } }
  messages(first: 100) { edges { node { seq body sender { id } } } }
"""
CREATE_GROUP = f"""
mutation Create($input: CreateGroupInput!) {{ createGroup(input: $input) {{ {GROUP_SELECTION} }} }}
"""
UPDATE_GROUP = f"""
mutation Update($input: UpdateGroupInput!) {{ updateGroup(input: $input) {{ {GROUP_SELECTION} }} }}
"""
DELETE_GROUP = "mutation Delete($c: ID!) { deleteGroup(conversationId: $c) { conversationId } }"
INVITE_TO_GROUP = f"""
mutation Invite($c: ID!, $u: [ID!]!) {{
  inviteToGroup(conversationId: $c, userIds: $u) {{ {GROUP_SELECTION} }}
}}
"""
ACCEPT_GROUP_INVITE = f"""
mutation Accept($c: ID!) {{ acceptGroupInvite(conversationId: $c) {{ {GROUP_SELECTION} }} }}
"""
DECLINE_GROUP_INVITE = """
mutation Decline($c: ID!) { declineGroupInvite(conversationId: $c) { conversationId } }
"""
LEAVE_GROUP = "mutation Leave($c: ID!) { leaveGroup(conversationId: $c) { conversationId } }"
# Search and the inbox's operations (issue 12).
SEARCH_MESSAGES = """
query Search($c: ID, $s: ID) {
  searchMessages(query: "hi", conversationId: $c, senderId: $s) {
    edges { node { snippet message { body conversationId } } }
  }
}
"""
DIRECT_CONVERSATION_WITH = """
query Direct($u: ID!) { directConversationWith(userId: $u) { id lastSeq members { user { id } } } }
"""
INBOX_SETTINGS = "id lastSeq archived pinned mutedUntil members { user { id } }"
MUTE_CONVERSATION = f"""
mutation Mute($c: ID!, $until: DateTime!) {{
  muteConversation(conversationId: $c, until: $until) {{ {INBOX_SETTINGS} }}
}}
"""
#: A time to mute until (the field refuses the past).
MUTE_UNTIL = "2999-01-01T00:00:00+00:00"
DELETE_CONVERSATION = """
mutation Delete($c: ID!) { deleteConversation(conversationId: $c) { conversationId } }
"""
SET_PROFILE_PICTURE = """
mutation Set($u: ID) { setProfilePicture(purpose: AVATAR, uploadId: $u) { id avatarUrl } }
"""
SET_GROUP_PICTURE = f"""
mutation Set($c: ID!, $u: ID) {{
  setGroupPicture(conversationId: $c, purpose: AVATAR, uploadId: $u) {{ {GROUP_SELECTION} }}
}}
"""
CREATE_UPLOAD = """
mutation { createUpload(kind: IMAGE, contentType: "image/png", size: 100) { id } }
"""
# Any object by id: each selects what a leak of each type would show.
NODE_SELECTION = """
  __typename id
  ... on Conversation { lastSeq members { user { id } } }
  ... on Message { body }
  ... on Session { deviceLabel }
  ... on UploadTicket { url }
  ... on User { email phone }
  ... on UserAccount { email }
  ... on Friendship { state user { id email } }
  ... on GroupInvite { conversationId name invitee { id } invitedBy { id } }
"""
NODE = f"query Node($id: ID!) {{ node(id: $id) {{ {NODE_SELECTION} }} }}"
NODES = f"query Nodes($ids: [ID!]!) {{ nodes(ids: $ids) {{ {NODE_SELECTION} }} }}"


def _on_conversation(field: str) -> str:
    return f"""
mutation Change($c: ID!) {{ {field}(conversationId: $c) {{ {INBOX_SETTINGS} }} }}
"""


# Messages: each answer selects the message as far as it could show it, and its conversation.
MESSAGE_ANSWER = f"id body {MESSAGE_STATE} conversation {{ id lastSeq }}"


def _on_message(field: str, arguments: str = "") -> str:
    return f"""
mutation Change($m: ID!) {{ {field}(messageId: $m{arguments}) {{ {MESSAGE_ANSWER} }} }}
"""


EDIT_MESSAGE = _on_message("editMessage", ', body: "taken over"')
UNSEND_MESSAGE = _on_message("unsendMessage")
REACT_TO_MESSAGE = _on_message("reactToMessage", ', emoji: "💀"')
PIN_MESSAGE = _on_message("pinMessage")
UNPIN_MESSAGE = _on_message("unpinMessage")
STAR_MESSAGE = _on_message("starMessage")
MARK_PLAYED = _on_message("markPlayed")
UNSTAR_MESSAGE = _on_message("unstarMessage")
DELETE_MESSAGE_FOR_ME = "mutation Hide($m: ID!) { deleteMessageForMe(messageId: $m) { messageId } }"
FORWARD_MESSAGE = f"""
mutation Forward($input: ForwardMessageInput!) {{
  forwardMessage(input: $input) {{ {MESSAGE_ANSWER} }}
}}
"""


def _on_a_message(document: str) -> Case:
    """A field on one message: whoever does not see it (a stranger: alice's; a former member:
    even his own, in the group he left) gets NOT_FOUND, as for a message that does not exist."""
    return Case(
        "messageId",
        document,
        lambda w: {"m": w.message_id},
        codes=NOT_YOURS,
        former=lambda f: {"m": f.message_id},
    )


def _forward(message_id: str, conversation_id: str) -> dict[str, Any]:
    return {
        "input": {
            "messageId": message_id,
            "conversationIds": [conversation_id],
            "clientMessageId": "matrix-forward",
        }
    }


def _on_group_member(field: str) -> str:
    return f"""
mutation Change($c: ID!, $u: ID!) {{
  {field}(conversationId: $c, userId: $u) {{ {GROUP_SELECTION} }}
}}
"""


@dataclass(frozen=True)
class World:
    owner: Account  # alice
    friend: Account  # bob: alice's friend, and the other member of her conversation
    requester: Account  # carol: asked alice to be friends, no answer yet
    blocked: Account  # dave: alice blocked him
    suspended: Account  # erin: suspended (an administrator's decision)
    stranger: Account  # mallory: related to none of them
    conversation_id: str  # alice and bob's direct conversation
    group_id: str  # alice's group: she owns it, bob is a member, carol is invited
    other_session_id: str  # alice's second device (not the one the test acts through)
    owner_view: dict[str, Any]  # OWNER_VIEW as alice saw it once everything was set up
    message_id: str  # alice's "hi bob" in her conversation with bob
    group_message_id: str  # bob's message in alice's group
    stranger_conversation_id: str  # mallory's own DM (with carol): she may post there
    stranger_message_id: str  # mallory's message there
    upload_id: str  # alice's upload, not sent yet
    friendship_id: str  # alice and bob's friendship
    request_id: str  # carol's friend request to alice
    invite_id: str  # carol's invitation to alice's group


View = dict[str, Any]


@dataclass(frozen=True)
class Former:
    """A group frank was in and is not any more, and what happened there since."""

    owner: Account  # alice: owns the group
    member: Account  # bob: still in it
    former: Account  # frank: joined, posted, then was removed or left
    invitee: Account  # carol: invited after frank had gone
    group_id: str
    direct_id: str  # frank and alice's direct conversation: he is still in that one
    owner_view: View  # OWNER_VIEW as alice saw it after frank had gone
    message_id: str  # frank's message in the group, sent while he was a member
    direct_message_id: str  # alice's "hi frank" in their direct conversation
    upload_id: str = ""  # frank's upload (bytes sent), not used yet


#: frank's message in the group, sent while he was a member: a retry with its client id is
#: how an idempotent send could hand the group back to him.
FORMER_CLIENT_ID = "frank-while-a-member"
#: What happened in the group after frank had gone: none of it may reach him.
SECRETS = ("Secret plans", "Only for those still here", "posted after frank left")


def _unchanged(_world: World, before: View) -> View:
    return before


@dataclass(frozen=True)
class Case:
    #: The ID argument aimed at the owner's things (a path into input objects: `input.x`).
    argument: str
    document: str
    variables: Callable[[World], dict[str, Any]]
    codes: frozenset[str] = REFUSED
    kind: str = PRIVATE
    #: PUBLIC_TARGET only: asserts that what the stranger got reveals nothing private.
    reveals_nothing: Callable[[World, dict[str, Any]], None] | None = None
    #: The owner's view afterwards, given the one before: unchanged unless said otherwise.
    owner_view_after: Callable[[World, View], View] = _unchanged
    #: What else must still hold afterwards, when the target is not the owner's (erin).
    still_holds: Callable[[World], Awaitable[None]] | None = None
    #: Fields that take a conversation id: the variables aimed at the group frank left.
    former: Callable[[Former], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        assert self.kind in (PRIVATE, PUBLIC_TARGET), self.kind
        assert (self.kind == PUBLIC_TARGET) == (self.reveals_nothing is not None), (
            "a public-target entry says what must not leak; a private one is refused"
        )
        assert self.former is None or self.kind == PRIVATE, "former members are refused"


def _new_direct_conversation_with_the_owner(world: World, message: dict[str, Any]) -> None:
    conversation = message["conversation"]
    assert message["conversationId"] == conversation["id"] != world.conversation_id
    assert (message["seq"], conversation["lastSeq"]) == (1, 1)
    members = {member["user"]["id"] for member in conversation["members"]}
    assert members == {world.stranger.id, world.owner.id}
    history = [edge["node"] for edge in conversation["messages"]["edges"]]
    assert history == [{"seq": 1, "body": "hello", "sender": {"id": world.stranger.id}}]


def _a_request_to_the_owner_and_nothing_else(world: World, friendship: dict[str, Any]) -> None:
    # emailVerified and twoFactorEnabled are the owner's own business (null for anyone else;
    # the world checks they are not null for her).
    assert friendship == {
        "state": "REQUESTED",
        "requestedByMe": True,
        "acceptedAt": None,
        "user": {"id": world.owner.id, "emailVerified": None, "twoFactorEnabled": None},
    }


def _the_owner_blocked_and_nothing_else(world: World, blocked: dict[str, Any]) -> None:
    assert blocked == {"user": {"id": world.owner.id, "emailVerified": None}}


def _the_owners_public_profile_only(world: World, profile: dict[str, Any]) -> None:
    # Contact details are private by default; verification and settings are hers alone.
    assert profile == {
        "id": world.owner.id,
        "email": None,
        "phone": None,
        "emailVerified": None,
        "twoFactorEnabled": None,
        "privacySettings": None,
    }


def _only_what_the_owner_shares_with_everyone(world: World, event: dict[str, Any]) -> None:
    # Online status is shared with everyone by default; her email and settings are not.
    assert event == {
        "user": {"id": world.owner.id, "email": None, "privacySettings": None},
        "status": "OFFLINE",
    }


def _a_new_group_inviting_the_owner_and_nothing_else(world: World, created: dict[str, Any]) -> None:
    assert created["id"] not in (world.group_id, world.conversation_id)
    assert (created["myRole"], created["lastSeq"]) == ("OWNER", 2)
    assert created["members"] == [{"user": {"id": world.stranger.id}, "role": "OWNER"}]
    assert created["invitedMembers"] == [{"user": {"id": world.owner.id}}]
    senders = {edge["node"]["sender"]["id"] for edge in created["messages"]["edges"]}
    assert senders == {world.stranger.id}


def _one_more_group_invite_for_the_owner(world: World, before: View) -> View:
    after = dict(before)
    after["myGroupInvites"] = [
        {"name": "Mallory's", "invitedBy": {"id": world.stranger.id}},
        *before["myGroupInvites"],
    ]
    return after


def _members_only(
    argument: str,
    document: str,
    stranger: Callable[[World], dict[str, Any]],
    former: Callable[[Former], dict[str, Any]],
) -> Case:
    """A field on one conversation or group: whoever is not in it (a stranger, a former
    member) gets NOT_FOUND, exactly as for an id that does not exist."""
    return Case(argument, document, stranger, codes=NOT_YOURS, former=former)


def _group_member_cases(field: str) -> tuple[Case, Case]:
    """Aimed at alice's group and at bob in it: neither may be touched by a stranger, nor by
    someone who was in the group."""
    document = _on_group_member(field)
    return tuple(  # type: ignore[return-value]
        _members_only(
            argument,
            document,
            lambda w: {"c": w.group_id, "u": w.friend.id},
            lambda f: {"c": f.group_id, "u": f.member.id},
        )
        for argument in ("conversationId", "userId")
    )


def _no_hits(_world: World, found: dict[str, Any]) -> None:
    # only the stranger's own conversations are searched, and she is in none of alice's
    assert found == {"edges": []}


def _no_conversation_with_the_owner(_world: World, found: dict[str, Any] | None) -> None:
    # mallory has none with alice: null, as for anyone she never wrote to (and none is made)
    assert found is None


def _inbox_case(field: str) -> Case:
    """Mute, archive, pin and their undoing: a member's own settings of their conversation."""
    document = MUTE_CONVERSATION if field == "muteConversation" else _on_conversation(field)
    extra = {"until": MUTE_UNTIL} if field == "muteConversation" else {}
    return _members_only(
        "conversationId",
        document,
        lambda w: {"c": w.conversation_id, **extra},
        lambda f: {"c": f.group_id, **extra},
    )


#: The fields issue 12 added that take an id; the blocked party is aimed at them too.
INBOX_FIELDS = (
    "muteConversation",
    "unmuteConversation",
    "archiveConversation",
    "unarchiveConversation",
    "pinConversation",
    "unpinConversation",
)


def _one_more_request_for_the_owner(world: World, before: View) -> View:
    incoming = [world.stranger.id, *before["incomingFriendRequests"]]
    return {**before, "incomingFriendRequests": incoming}


async def _suspended_user_still_cannot_sign_in(world: World) -> None:
    body = await graphql(
        world.suspended.http,
        LOGIN,
        {"input": {"login": world.suspended.username, "password": PASSWORD}},
    )
    assert [error["extensions"]["code"] for error in body["errors"]] == ["UNAUTHENTICATED"]


def _every_kind_of_the_owners(world: World) -> list[str]:
    """An id of each kind of alice's things the world has (her account as administrators see
    it too); her attachments are test_node_over_every_kind_for_owner_and_stranger's."""
    return [
        world.conversation_id,
        world.group_id,
        world.message_id,
        world.group_message_id,
        world.other_session_id,
        world.upload_id,
        world.friendship_id,
        world.request_id,
        world.invite_id,  # carol's, to alice's group: alice sees it among invitedMembers
        global_id(Kind.USER_ACCOUNT, pk(world.owner.id)),
        world.owner.id,
    ]


def _nothing(_world: World, found: dict[str, Any] | None) -> None:
    assert found is None, found


def _only_the_owners_public_profile(world: World, found: Any) -> None:
    *private, profile = found
    assert private == [None] * len(private), private
    assert profile == {"__typename": "User", "id": world.owner.id, "email": None, "phone": None}


#: Every root field that takes an ID: field name -> its case (or one case per ID argument).
MATRIX: dict[str, Case | tuple[Case, ...]] = {
    # One of my conversations: members only (NOT_FOUND, as if there were none).
    "conversation": _members_only(
        "id", CONVERSATION, lambda w: {"id": w.conversation_id}, lambda f: {"id": f.group_id}
    ),
    "sendMessage": (
        # Into a conversation: members only; nothing may be stored in alice and bob's. frank
        # retries the send he made while a member: the message may not lead him back in.
        _members_only(
            "input.conversationId",
            SEND_MESSAGE,
            lambda w: {
                "input": {
                    "body": "intrusion",
                    "clientMessageId": "matrix-into",
                    "conversationId": w.conversation_id,
                }
            },
            lambda f: {
                "input": {
                    "body": "frank was here",
                    "clientMessageId": FORMER_CLIENT_ID,
                    "conversationId": f.group_id,
                }
            },
        ),
        # To a person: anyone may write to anyone not blocked (a DM is created on the first
        # message), so it works; it must open a NEW conversation, never alice's with bob.
        Case(
            "input.recipientId",
            SEND_MESSAGE,
            lambda w: {
                "input": {
                    "body": "hello",
                    "clientMessageId": "matrix-to",
                    "recipientId": w.owner.id,
                }
            },
            kind=PUBLIC_TARGET,
            reveals_nothing=_new_direct_conversation_with_the_owner,
        ),
        # Quoting a message: only one of the conversation written in, and only one I see;
        # mallory quotes alice's into her own DM, frank his own in the group he left.
        _members_only(
            "input.replyToId",
            SEND_MESSAGE,
            lambda w: {
                "input": {
                    "body": "quoting",
                    "clientMessageId": "matrix-quote",
                    "conversationId": w.stranger_conversation_id,
                    "replyToId": w.message_id,
                }
            },
            lambda f: {
                "input": {
                    "body": "quoting",
                    "clientMessageId": "matrix-quote",
                    "conversationId": f.direct_id,
                    "replyToId": f.message_id,
                }
            },
        ),
        # Someone else's upload: NOT_FOUND, as an upload that does not exist; mallory sends
        # alice's into her own DM, and nothing of alice's is used up.
        Case(
            "input.uploadIds",
            SEND_MESSAGE,
            lambda w: {
                "input": {
                    "clientMessageId": "matrix-upload",
                    "conversationId": w.stranger_conversation_id,
                    "uploadIds": [w.upload_id],
                }
            },
            codes=NOT_YOURS,
            # frank sends his own upload into the group he left.
            former=lambda f: {
                "input": {
                    "clientMessageId": "matrix-upload",
                    "conversationId": f.group_id,
                    "uploadIds": [f.upload_id],
                }
            },
        ),
    ),
    # A message is its conversation's: members only, like the conversation itself. Nothing of
    # alice's changes (OWNER_VIEW shows every message's edits, reactions, pins and stars).
    "editMessage": _on_a_message(EDIT_MESSAGE),
    "unsendMessage": _on_a_message(UNSEND_MESSAGE),
    "deleteMessageForMe": _on_a_message(DELETE_MESSAGE_FOR_ME),
    "reactToMessage": _on_a_message(REACT_TO_MESSAGE),
    "pinMessage": _on_a_message(PIN_MESSAGE),
    "unpinMessage": _on_a_message(UNPIN_MESSAGE),
    "starMessage": _on_a_message(STAR_MESSAGE),
    "unstarMessage": _on_a_message(UNSTAR_MESSAGE),
    "markPlayed": _on_a_message(MARK_PLAYED),
    # Someone else's upload is no picture of mine: NOT_FOUND, and alice's stays unused.
    "setProfilePicture": Case(
        "uploadId", SET_PROFILE_PICTURE, lambda w: {"u": w.upload_id}, codes=NOT_YOURS
    ),
    "setGroupPicture": (
        # A group's pictures are its owner's and admins' (removing one, here): members only.
        _members_only(
            "conversationId",
            SET_GROUP_PICTURE,
            lambda w: {"c": w.group_id},
            lambda f: {"c": f.group_id},
        ),
        # alice's upload, aimed at alice's group: refused as if neither existed.
        Case(
            "uploadId",
            SET_GROUP_PICTURE,
            lambda w: {"c": w.group_id, "u": w.upload_id},
            codes=NOT_YOURS,
            former=lambda f: {"c": f.group_id, "u": f.upload_id},
        ),
    ),
    # Forwarding: from a message I see (not alice's, not frank's in the group he left) into a
    # conversation I may post in (not alice's, not the group he left).
    "forwardMessage": (
        _members_only(
            "input.messageId",
            FORWARD_MESSAGE,
            lambda w: _forward(w.message_id, w.stranger_conversation_id),
            lambda f: _forward(f.message_id, f.direct_id),
        ),
        _members_only(
            "input.conversationIds",
            FORWARD_MESSAGE,
            lambda w: _forward(w.stranger_message_id, w.conversation_id),
            lambda f: _forward(f.direct_message_id, f.group_id),
        ),
    ),
    # Receipts are a member's own: bob has not read alice's last two messages, and still hasn't.
    "markRead": _members_only(
        "conversationId",
        MARK_READ,
        lambda w: {"c": w.conversation_id, "s": 3},
        lambda f: {"c": f.group_id, "s": 100},
    ),
    "markDelivered": _members_only(
        "conversationId",
        MARK_DELIVERED,
        lambda w: {"c": w.conversation_id, "s": 3},
        lambda f: {"c": f.group_id, "s": 100},
    ),
    # Answering a message request: the person asked only; alice and bob's conversation is
    # neither accepted again nor deleted.
    "acceptMessageRequest": _members_only(
        "conversationId",
        ACCEPT_MESSAGE_REQUEST,
        lambda w: {"c": w.conversation_id},
        lambda f: {"c": f.group_id},
    ),
    "declineMessageRequest": _members_only(
        "conversationId",
        DECLINE_MESSAGE_REQUEST,
        lambda w: {"c": w.conversation_id},
        lambda f: {"c": f.group_id},
    ),
    # Typing into a conversation: members only.
    "setTyping": _members_only(
        "conversationId",
        SET_TYPING,
        lambda w: {"c": w.conversation_id, "t": True},
        lambda f: {"c": f.group_id, "t": True},
    ),
    # Someone else's session is NOT_FOUND ("session ids reveal nothing"); alice's stays live.
    "revokeSession": Case("id", REVOKE_SESSION, lambda w: {"id": w.other_session_id}),
    # Asking anyone to be friends is the point of the field: alice gets one more request, and
    # the answer shows nothing of hers.
    "sendFriendRequest": Case(
        "userId",
        ASK_TO_BE_FRIENDS,
        lambda w: {"u": w.owner.id},
        kind=PUBLIC_TARGET,
        reveals_nothing=_a_request_to_the_owner_and_nothing_else,
        owner_view_after=_one_more_request_for_the_owner,
    ),
    # Only the person asked can accept: carol asked alice, not mallory (NOT_FOUND).
    "acceptFriendRequest": Case("userId", ACCEPT_FRIEND_REQUEST, lambda w: {"u": w.requester.id}),
    # Only the person asked can decline carol's request to alice.
    "declineFriendRequest": Case("userId", DECLINE_FRIEND_REQUEST, lambda w: {"u": w.requester.id}),
    # Only the requester can cancel: mallory asked alice nothing.
    "cancelFriendRequest": Case("userId", CANCEL_FRIEND_REQUEST, lambda w: {"u": w.owner.id}),
    # Anyone signed in may look anyone up; only what alice shares with everyone shows.
    "user": Case(
        "id",
        PROFILE,
        lambda w: {"id": w.owner.id},
        kind=PUBLIC_TARGET,
        reveals_nothing=_the_owners_public_profile_only,
    ),
    # Only one of the two friends can end a friendship: alice and bob stay friends.
    "removeFriend": Case("userId", REMOVE_FRIEND, lambda w: {"u": w.friend.id}),
    # Anyone may block anyone (it only changes the blocker's lists and what reaches them):
    # alice's friendship, request, block and conversation are untouched.
    "blockUser": Case(
        "userId",
        BLOCK,
        lambda w: {"u": w.owner.id},
        kind=PUBLIC_TARGET,
        reveals_nothing=_the_owner_blocked_and_nothing_else,
    ),
    # Only the blocker can lift a block: alice's block on dave stays.
    "unblockUser": Case("userId", UNBLOCK_USER, lambda w: {"u": w.blocked.id}),
    # Administrators only (mallory is a plain user): alice is not suspended or deleted, erin
    # is not let back in.
    "suspendUser": Case("userId", SUSPEND_USER, lambda w: {"u": w.owner.id}, codes=ADMINS_ONLY),
    "unsuspendUser": Case(
        "userId",
        UNSUSPEND_USER,
        lambda w: {"u": w.suspended.id},
        codes=ADMINS_ONLY,
        still_holds=_suspended_user_still_cannot_sign_in,
    ),
    "deleteUser": Case("userId", DELETE_USER, lambda w: {"u": w.owner.id}, codes=ADMINS_ONLY),
    # Events of a conversation, over a real WebSocket: members only. afterSeq 0 would replay
    # all three messages first if the membership check let mallory in (or frank back in).
    "conversationEvents": _members_only(
        "conversationId",
        CONVERSATION_EVENTS,
        lambda w: {"id": w.conversation_id, "afterSeq": 0},
        lambda f: {"id": f.group_id, "afterSeq": 0},
    ),
    # Watching anyone's presence is allowed; privacy decides what it shows (alice has no
    # socket open, so she is offline).
    "presenceChanged": Case(
        "userIds",
        WATCH_PRESENCE,
        lambda w: {"ids": [w.owner.id]},
        kind=PUBLIC_TARGET,
        reveals_nothing=_only_what_the_owner_shares_with_everyone,
    ),
    # Anyone may start a group and invite anyone not blocked: alice gets one invitation, and
    # the answer shows only the new group.
    "createGroup": Case(
        "input.inviteeIds",
        CREATE_GROUP,
        lambda w: {"input": {"name": "Mallory's", "inviteeIds": [w.owner.id]}},
        kind=PUBLIC_TARGET,
        reveals_nothing=_a_new_group_inviting_the_owner_and_nothing_else,
        owner_view_after=_one_more_group_invite_for_the_owner,
    ),
    # Alice's group: outsiders change nothing in it, and cannot get themselves (back) in.
    "updateGroup": _members_only(
        "input.conversationId",
        UPDATE_GROUP,
        lambda w: {"input": {"conversationId": w.group_id, "name": "Taken"}},
        lambda f: {"input": {"conversationId": f.group_id, "name": "Taken"}},
    ),
    "deleteGroup": _members_only(
        "conversationId", DELETE_GROUP, lambda w: {"c": w.group_id}, lambda f: {"c": f.group_id}
    ),
    "inviteToGroup": tuple(
        _members_only(
            argument,
            INVITE_TO_GROUP,
            lambda w: {"c": w.group_id, "u": [w.stranger.id]},
            lambda f: {"c": f.group_id, "u": [f.former.id]},
        )
        for argument in ("conversationId", "userIds")
    ),
    # Carol's invitation is hers: a stranger can neither accept nor decline it (nor can frank,
    # whose own invitation was used up when he joined).
    "acceptGroupInvite": _members_only(
        "conversationId",
        ACCEPT_GROUP_INVITE,
        lambda w: {"c": w.group_id},
        lambda f: {"c": f.group_id},
    ),
    "declineGroupInvite": _members_only(
        "conversationId",
        DECLINE_GROUP_INVITE,
        lambda w: {"c": w.group_id},
        lambda f: {"c": f.group_id},
    ),
    "leaveGroup": _members_only(
        "conversationId", LEAVE_GROUP, lambda w: {"c": w.group_id}, lambda f: {"c": f.group_id}
    ),
    "removeGroupMember": _group_member_cases("removeGroupMember"),
    "promoteGroupMember": _group_member_cases("promoteGroupMember"),
    "demoteGroupMember": _group_member_cases("demoteGroupMember"),
    "transferGroupOwnership": _group_member_cases("transferGroupOwnership"),
    # Search covers the searcher's own conversations only: naming one of alice's is NOT_FOUND;
    # naming alice as the sender finds nothing (mallory shares no conversation with her).
    "searchMessages": (
        _members_only(
            "conversationId",
            SEARCH_MESSAGES,
            lambda w: {"c": w.conversation_id},
            lambda f: {"c": f.group_id},
        ),
        Case(
            "senderId",
            SEARCH_MESSAGES,
            lambda w: {"s": w.owner.id},
            kind=PUBLIC_TARGET,
            reveals_nothing=_no_hits,
        ),
    ),
    # Anyone may ask for their DM with anyone: mallory has none with alice (null), and asking
    # creates none (alice's view, inbox and requests included, is unchanged).
    "directConversationWith": Case(
        "userId",
        DIRECT_CONVERSATION_WITH,
        lambda w: {"u": w.owner.id},
        kind=PUBLIC_TARGET,
        reveals_nothing=_no_conversation_with_the_owner,
    ),
    **{field: _inbox_case(field) for field in INBOX_FIELDS},
    # Any object by its global id: null for what is not hers, as for an id naming nothing.
    "node": Case(
        "id",
        NODE,
        lambda w: {"id": w.conversation_id},
        kind=PUBLIC_TARGET,
        reveals_nothing=_nothing,
    ),
    "nodes": Case(
        "ids",
        NODES,
        lambda w: {"ids": _every_kind_of_the_owners(w)},
        kind=PUBLIC_TARGET,
        reveals_nothing=_only_the_owners_public_profile,
    ),
    # Deleting for everyone: members only (the owner, for a group); alice's conversation and
    # group stay as they are.
    "deleteConversation": (
        _members_only(
            "conversationId",
            DELETE_CONVERSATION,
            lambda w: {"c": w.conversation_id},
            lambda f: {"c": f.group_id},
        )
    ),
}


def _cases(field: str) -> tuple[Case, ...]:
    entry = MATRIX[field]
    return entry if isinstance(entry, tuple) else (entry,)


def _operation(document: str) -> tuple[str, str]:
    """The operation type of a document and the one root field it selects."""
    (operation,) = [
        d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)
    ]
    (selection,) = operation.selection_set.selections
    return operation.operation.value, selection.name.value  # type: ignore[attr-defined]


def _params(operations: set[str]) -> list[Any]:
    """One param per case whose document is one of these operations, named after its field."""
    return [
        pytest.param(field, case, id=field if len(cases) == 1 else f"{field}.{case.argument}")
        for field, cases in ((field, _cases(field)) for field in MATRIX)
        for case in cases
        if _operation(case.document)[0] in operations
    ]


# -- discovery ----------------------------------------------------------------------------


def _named(type_ref: dict[str, Any]) -> dict[str, Any]:
    while type_ref.get("ofType"):
        type_ref = type_ref["ofType"]
    return type_ref


def _id_paths(
    name: str, type_ref: dict[str, Any], types: dict[str, Any], seen: frozenset[str]
) -> Iterator[str]:
    """The paths (`input.recipientId`) of ID arguments, following input objects."""
    named = _named(type_ref)["name"]
    if named == "ID":
        yield name
    elif types[named]["kind"] == "INPUT_OBJECT" and named not in seen:
        for field in types[named]["inputFields"]:
            yield from _id_paths(f"{name}.{field['name']}", field["type"], types, seen | {named})


async def _fields_taking_ids(app: RunningApp) -> dict[str, tuple[str, set[str]]]:
    """Every root field with an ID argument: name -> (operation type, its ID argument paths)."""
    schema = (await data(app.http, ROOT_FIELD_ARGUMENTS))["__schema"]
    types = {t["name"]: t for t in schema["types"]}
    found: dict[str, tuple[str, set[str]]] = {}
    for operation in ("query", "mutation", "subscription"):
        root = schema[f"{operation}Type"]
        for field in types[root["name"]]["fields"] if root else []:
            paths = {
                path
                for argument in field["args"]
                for path in _id_paths(argument["name"], argument["type"], types, frozenset())
            }
            if paths:
                assert field["name"] not in found, f"{field['name']} is on two root types"
                found[field["name"]] = (operation, paths)
    return found


async def test_every_field_that_takes_an_id_has_an_entry(app: RunningApp) -> None:
    # given every root field with an ID argument, as the running API describes itself
    discovered = await _fields_taking_ids(app)
    assert {"conversation", "sendMessage", "conversationEvents"} <= discovered.keys()
    assert discovered["sendMessage"][1] == {
        "input.recipientId",
        "input.conversationId",
        "input.replyToId",
        "input.uploadIds",
    }
    # then each has an entry, each entry still exists, and the entries cover every ID argument
    # with a document of the right operation that selects that very field
    problems = [
        f"{field} ({operation}, ID arguments {sorted(paths)}) has no entry: add one to MATRIX "
        "in tests/security/test_authorization_matrix.py saying what a stranger gets"
        for field, (operation, paths) in sorted(discovered.items())
        if field not in MATRIX
    ]
    problems += [
        f"MATRIX has an entry for {field}, which takes no ID (any more): remove or update it"
        for field in sorted(MATRIX.keys() - discovered.keys())
    ]
    for field in sorted(MATRIX.keys() & discovered.keys()):
        operation, paths = discovered[field]
        covered = {case.argument for case in _cases(field)}
        if covered != paths:
            problems.append(
                f"{field}: entries aim at {sorted(covered)} but its ID arguments are "
                f"{sorted(paths)}: add a case per ID argument to its MATRIX entry"
            )
        for case in _cases(field):
            if _operation(case.document) != (operation, field):
                problems.append(f"{field}: the document is not a {operation} selecting {field}")
            if _takes_a_conversation(field, paths) and case.kind == PRIVATE and not case.former:
                problems.append(
                    f"{field} ({case.argument}) takes a conversation id: give its case the "
                    "`former` variables that aim it at the group a former member left"
                )
    assert not problems, "\n".join(problems)


def _takes_a_conversation(field: str, paths: set[str]) -> bool:
    return field == "conversation" or any(p.split(".")[-1] == "conversationId" for p in paths)


# -- the world ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each world signs up six people and signs alice in again: at its defaults argon2 takes
    ~0.1 s a hash, most of the module's time. Who may touch what does not depend on it."""
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


def _user_ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["user"]["id"] for edge in connection["edges"]]


async def _owner_view(owner: Account, conversation_id: str, group_id: str) -> View:
    view = await owner.call(OWNER_VIEW, conversation=conversation_id, group=group_id)
    lists = ("friends", "incomingFriendRequests", "outgoingFriendRequests", "blockedUsers")
    return {
        **view,
        **{name: _user_ids(view[name]) for name in lists},
        "mySessions": sorted(session["id"] for session in view["mySessions"]),
    }


async def _suspend(app: RunningApp, account: Account) -> None:
    """What an administrator's suspension stores (the admin API itself is what is under test)."""
    async with app.runtime.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == pk(account.id)).values(suspended_at=utcnow())
        )


async def _build_world(app: RunningApp) -> World:
    alice, bob, carol, dave, erin, mallory = await asyncio.gather(
        *(register(app.http) for _ in range(6))
    )

    async def conversation() -> tuple[str, str]:
        conversation_id = (await bob.send("hi alice", to=alice))["conversationId"]
        hers = await alice.send("hi bob", conversation_id=conversation_id)
        await alice.send("are you there?", conversation_id=conversation_id)
        return conversation_id, hers["id"]

    async def friendship() -> None:
        await alice.call(ASK_TO_BE_FRIENDS, u=bob.id)
        await bob.call(ACCEPT_FRIEND_REQUEST, u=alice.id)

    async def group() -> tuple[str, str]:
        created = await data(
            app.http,
            CREATE_GROUP,
            {"input": {"name": "Book club", "inviteeIds": [bob.id, carol.id]}},
            token=alice.token,
        )
        group_id = created["createGroup"]["id"]
        await bob.call(ACCEPT_GROUP_INVITE, c=group_id)
        bobs = await bob.send("first chapter?", conversation_id=group_id)
        return group_id, bobs["id"]

    (
        ((conversation_id, message_id), (group_id, group_message_id), mallorys),
        *_,
    ) = await asyncio.gather(
        asyncio.gather(conversation(), group(), mallory.send("hello carol", to=carol)),
        friendship(),
        carol.call(ASK_TO_BE_FRIENDS, u=alice.id),
        alice.call(BLOCK, u=dave.id),
        data(app.http, LOGIN, {"input": {"login": alice.username, "password": PASSWORD}}),
        _suspend(app, erin),
    )
    sessions = (await alice.call(SESSIONS))["mySessions"]
    (other_session_id,) = [s["id"] for s in sessions if not s["current"]]
    upload = await alice.call(CREATE_UPLOAD)
    relations = await alice.call(RELATION_IDS)
    ((friendship_id,), (request_id,)) = (
        [edge["node"]["id"] for edge in relations[name]["edges"]]
        for name in ("friends", "incomingFriendRequests")
    )
    (invite,) = (await carol.call(MY_INVITE_IDS))["myGroupInvites"]
    view = await _owner_view(alice, conversation_id, group_id)
    # Something to protect in every list a field of the matrix could change, and a receipt
    # (bob's) that a stray markRead/markDelivered would move.
    assert view["conversation"]["lastSeq"] == 3
    assert len(view["conversation"]["messages"]["edges"]) == 3
    markers = {m["user"]["id"]: m["lastReadSeq"] for m in view["conversation"]["members"]}
    assert markers == {alice.id: 3, bob.id: 1}
    assert (view["friends"], view["incomingFriendRequests"]) == ([bob.id], [carol.id])
    assert (view["blockedUsers"], len(view["mySessions"])) == ([dave.id], 2)
    assert view["me"] == {"emailVerified": False, "twoFactorEnabled": False}
    members = {m["user"]["id"]: m["role"] for m in view["group"]["members"]}
    assert members == {alice.id: "OWNER", bob.id: "MEMBER"}
    assert view["group"]["invitedMembers"] == [{"user": {"id": carol.id}}]
    assert view["group"]["lastSeq"] == 4  # created, invited, bob joined, bob's message
    return World(
        alice,
        bob,
        carol,
        dave,
        erin,
        mallory,
        conversation_id,
        group_id,
        other_session_id,
        view,
        message_id=message_id,
        group_message_id=group_message_id,
        stranger_conversation_id=mallorys["conversationId"],
        stranger_message_id=mallorys["id"],
        upload_id=upload["createUpload"]["id"],
        friendship_id=friendship_id,
        request_id=request_id,
        invite_id=invite["id"],
    )


# -- the matrix -----------------------------------------------------------------------------


def _assert_refused(
    field: str,
    expected: frozenset[str],
    errors: list[dict[str, Any]] | None,
    data: dict[str, Any] | None,
) -> None:
    assert errors, f"{field} answered: {data}"
    codes = {error.get("extensions", {}).get("code") for error in errors}
    assert codes <= expected, f"{field} refused with {codes}, not {expected}"
    assert data is None or data == {field: None}, f"{field} told {data}"


@pytest.mark.parametrize(("field", "case"), _params({"query", "mutation"}))
async def test_a_stranger_gets_nothing_through_queries_and_mutations(
    app: RunningApp, field: str, case: Case
) -> None:
    # given alice's world, and mallory who knows its ids
    world = await _build_world(app)
    # when mallory calls the field with them
    body = await graphql(app.http, case.document, case.variables(world), token=world.stranger.token)
    # then she is refused and told nothing, or (public target) gets only what is hers to get
    if case.kind == PRIVATE:
        _assert_refused(field, case.codes, body.get("errors"), body.get("data"))
    else:
        assert not body.get("errors"), body["errors"]
        assert case.reveals_nothing is not None
        case.reveals_nothing(world, body["data"][field])
    # and alice's things are as they were
    after = await _owner_view(world.owner, world.conversation_id, world.group_id)
    assert after == case.owner_view_after(world, world.owner_view)
    if case.still_holds is not None:
        await case.still_holds(world)


def _blocked_params() -> list[Any]:
    fields = {*INBOX_FIELDS, "deleteConversation", "searchMessages", "directConversationWith"}
    return [param for param in _params({"query", "mutation"}) if param.values[0] in fields]


@pytest.mark.parametrize(("field", "case"), _blocked_params())
async def test_the_blocked_party_gets_nothing_through_the_inbox_fields(
    app: RunningApp, field: str, case: Case
) -> None:
    # given alice's world, and dave whom she blocked, who knows its ids
    world = await _build_world(app)
    # when dave calls the field with them
    body = await graphql(app.http, case.document, case.variables(world), token=world.blocked.token)
    # then he gets what a stranger gets: refused, or (public target) only what is his
    if case.kind == PRIVATE:
        _assert_refused(field, case.codes, body.get("errors"), body.get("data"))
    else:
        assert not body.get("errors"), body["errors"]
        assert case.reveals_nothing is not None
        case.reveals_nothing(world, body["data"][field])
    after = await _owner_view(world.owner, world.conversation_id, world.group_id)
    assert after == case.owner_view_after(world, world.owner_view)


@pytest.mark.parametrize(("field", "case"), _params({"subscription"}))
async def test_a_stranger_gets_nothing_through_subscriptions(
    server: RunningApp, field: str, case: Case
) -> None:
    # given alice's world, and mallory who knows its ids
    assert server.ws_url
    world = await _build_world(server)
    # when mallory subscribes with them over a WebSocket
    async with subscribe(
        server.ws_url, world.stranger.token, case.document, case.variables(world)
    ) as feed:
        try:
            first = await feed.next()
        except TransportQueryError as error:
            refusal: TransportQueryError | None = error
        else:
            refusal = None
    if case.kind == PRIVATE:
        # then the operation ends with the refusal, before a single event
        assert refusal is not None, f"{field} delivered a stranger {first}"
        _assert_refused(field, case.codes, refusal.errors, refusal.data)
    else:
        # or (public target) what she hears is only what is hers to hear
        assert refusal is None, refusal
        assert case.reveals_nothing is not None
        case.reveals_nothing(world, first)
    # and alice's things are as they were
    after = await _owner_view(world.owner, world.conversation_id, world.group_id)
    assert after == case.owner_view_after(world, world.owner_view)


# -- the former member --------------------------------------------------------------------

STANDINGS = ("removed", "left")
REMOVE_GROUP_MEMBER = _on_group_member("removeGroupMember")

# Everything a conversation shows, and what its last message leads back to. (Not `messages`:
# history has always checked membership itself, and its refusal would hide what the others
# leak by nulling the whole answer.)
DEEP_CONVERSATION = """
  id name description lastSeq lastActivityAt myRole unreadCount
  members { user { id } role lastReadSeq lastDeliveredSeq }
  invitedMembers { user { id } }
  myMembership { lastReadSeq }
  lastMessage { seq body conversation { id name lastSeq } }
"""
DEEP_SEND = f"""
mutation Send($input: SendMessageInput!) {{
  sendMessage(input: $input) {{ seq body conversation {{ {DEEP_CONVERSATION} }} }}
}}
"""
DEEP_INBOX = f"""
query Inbox {{ conversations(first: 100) {{ edges {{ node {{ {DEEP_CONVERSATION} }} }} }} }}
"""
DEEP_REQUESTS = f"""
query Requests {{ messageRequests(first: 100) {{ edges {{ node {{ {DEEP_CONVERSATION} }} }} }} }}
"""
DEEP_MY_EVENTS = f"""
subscription Mine($after: String) {{
  myEvents(after: $after) {{
    __typename conversationId cursor
    ... on MessagePostedEvent {{ message {{ seq body conversation {{ {DEEP_CONVERSATION} }} }} }}
    ... on ReceiptUpdatedEvent {{ user {{ id }} lastReadSeq }}
    ... on MessageChangedEvent {{ message {{ id body conversation {{ id name }} }} }}
  }}
}}
"""
# Every field of any type that leads to a Conversation or a page of them.
FIELD_TYPES = """
query FieldTypes {
  __schema { types { kind name fields { name type { ...TypeRef } } } }
}
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { name } } } }
"""
#: A `Node` may be a Conversation (`node(id:)`, `nodes(ids:)`).
CONVERSATION_TYPES = frozenset({"Conversation", "ConversationConnection", "Node"})


async def _build_former(app: RunningApp, standing: str) -> Former:
    """alice's group: bob and frank joined and frank posted; then frank was removed (or left),
    his message was reacted to, pinned and starred, and the group was renamed, written in,
    read and someone new invited."""
    alice, bob, frank, carol = await asyncio.gather(*(register(app.http) for _ in range(4)))
    created = await alice.call(
        CREATE_GROUP, input={"name": "Book club", "inviteeIds": [bob.id, frank.id]}
    )
    group_id = created["createGroup"]["id"]
    await bob.call(ACCEPT_GROUP_INVITE, c=group_id)
    await frank.call(ACCEPT_GROUP_INVITE, c=group_id)
    franks = await frank.send(
        "frank was here", conversation_id=group_id, client_id=FORMER_CLIENT_ID
    )
    to_frank = await alice.send("hi frank", to=frank)
    direct_id = to_frank["conversationId"]
    # while he is in it, frank sees the group like anyone else in it
    seen = (await frank.call(CONVERSATION, id=group_id))["conversation"]
    assert {m["user"]["id"] for m in seen["members"]} == {alice.id, bob.id, frank.id}
    if standing == "removed":
        await alice.call(REMOVE_GROUP_MEMBER, c=group_id, u=frank.id)
    else:
        await frank.call(LEAVE_GROUP, c=group_id)
    # (his message changes after he has gone: its events are not his either)
    await alice.call(REACT_TO_MESSAGE, m=franks["id"])
    await alice.call(PIN_MESSAGE, m=franks["id"])
    await bob.call(STAR_MESSAGE, m=franks["id"])
    details = {"name": SECRETS[0], "description": SECRETS[1]}
    await alice.call(UPDATE_GROUP, input={"conversationId": group_id, **details})
    await alice.send(SECRETS[2], conversation_id=group_id)
    await alice.call(INVITE_TO_GROUP, c=group_id, u=[carol.id])
    await bob.call(MARK_READ, c=group_id, s=100)
    view = await _owner_view(alice, direct_id, group_id)
    assert (view["group"]["name"], view["group"]["description"]) == SECRETS[:2]
    assert {m["user"]["id"] for m in view["group"]["members"]} == {alice.id, bob.id}
    assert view["group"]["invitedMembers"] == [{"user": {"id": carol.id}}]
    franks_upload = await media.upload(frank, media.png(), kind="IMAGE", content_type="image/png")
    return Former(
        alice,
        bob,
        frank,
        carol,
        group_id,
        direct_id,
        view,
        franks["id"],
        to_frank["id"],
        upload_id=franks_upload,
    )


def _learns_nothing_new(body: object) -> None:
    text = json.dumps(body)
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"a former member learnt {leaked}: {text}"


def _former_params(operations: set[str]) -> list[Any]:
    return [
        pytest.param(standing, *param.values, id=f"{standing}-{param.id}")
        for standing in STANDINGS
        for param in _params(operations)
        if param.values[1].former is not None
    ]


@pytest.mark.parametrize(("standing", "field", "case"), _former_params({"query", "mutation"}))
async def test_a_former_member_gets_nothing_through_queries_and_mutations(
    app: RunningApp, standing: str, field: str, case: Case
) -> None:
    # given a group frank was in, and what happened there after he had gone
    former = await _build_former(app, standing)
    assert case.former is not None
    # when frank calls the field with the group's id
    body = await graphql(app.http, case.document, case.former(former), token=former.former.token)
    # then he is told NOT_FOUND, as for a group that does not exist, and nothing new
    _assert_refused(field, case.codes, body.get("errors"), body.get("data"))
    _learns_nothing_new(body)
    # and the group is as alice left it
    after = await _owner_view(former.owner, former.direct_id, former.group_id)
    assert after == former.owner_view


@pytest.mark.parametrize(("standing", "field", "case"), _former_params({"subscription"}))
async def test_a_former_member_gets_nothing_through_subscriptions(
    server: RunningApp, standing: str, field: str, case: Case
) -> None:
    # given a group frank was in
    assert server.ws_url and case.former is not None
    former = await _build_former(server, standing)
    # when he subscribes to it from its first message
    async with subscribe(
        server.ws_url, former.former.token, case.document, case.former(former)
    ) as feed:
        with pytest.raises(TransportQueryError) as refusal:
            await feed.next()
    # then it ends with NOT_FOUND before a single event
    _assert_refused(field, case.codes, refusal.value.errors, refusal.value.data)
    _learns_nothing_new(refusal.value.errors)


@dataclass(frozen=True)
class Probe:
    """A former member's call through a field that leads to a Conversation."""

    document: str
    variables: Callable[[Former], dict[str, Any]]
    #: Asserts what he got; None: refused with NOT_FOUND.
    check: Callable[[Former, dict[str, Any]], None] | None = None


def _not_the_group(former: Former, body: dict[str, Any]) -> None:
    assert not body.get("errors"), body["errors"]
    (connection,) = body["data"].values()
    ids = [edge["node"]["id"] for edge in connection["edges"]]
    assert former.group_id not in ids


def _his_direct_conversation(former: Former, body: dict[str, Any]) -> None:
    assert not body.get("errors"), body["errors"]
    assert body["data"]["directConversationWith"]["id"] == former.direct_id


def _only_the_new_group(former: Former, body: dict[str, Any]) -> None:
    assert not body.get("errors"), body["errors"]
    created = body["data"]["createGroup"]
    assert created["id"] != former.group_id
    assert created["members"] == [{"user": {"id": former.former.id}, "role": "OWNER"}]


def _neither_the_group_nor_his_message_there(former: Former, body: dict[str, Any]) -> None:
    assert not body.get("errors"), body["errors"]
    (found,) = body["data"].values()
    assert found in (None, [None, None]), found


#: Every field that leads to a Conversation: root fields whose MATRIX entry has `former`
#: cases are covered there; the others are probed here.
PROBES: dict[str, Probe] = {
    # By id: the group, and even his own message there, are null to him now (as for an id
    # that names nothing), however deep the selection.
    "Query.node": Probe(
        NODE, lambda f: {"id": f.group_id}, _neither_the_group_nor_his_message_there
    ),
    "Query.nodes": Probe(
        NODES,
        lambda f: {"ids": [f.group_id, f.message_id]},
        _neither_the_group_nor_his_message_there,
    ),
    # The inbox and the message requests list only conversations he is in.
    "Query.conversations": Probe(DEEP_INBOX, lambda f: {}, _not_the_group),
    "Query.messageRequests": Probe(DEEP_REQUESTS, lambda f: {}, _not_the_group),
    # His DM with the group's owner is the one he is still in, never the group.
    "Query.directConversationWith": Probe(
        DIRECT_CONVERSATION_WITH, lambda f: {"u": f.owner.id}, _his_direct_conversation
    ),
    # A new group is the creator's own, and nothing else.
    "Mutation.createGroup": Probe(
        CREATE_GROUP, lambda f: {"input": {"name": "Frank's"}}, _only_the_new_group
    ),
    # A message he sent while a member (here, handed back by retrying its send) does not lead
    # back into the group: its `conversation` is NOT_FOUND for him, however deep the selection.
    # (Event payloads reach the same field: test_a_former_member_hears_nothing_of_the_group.)
    "Message.conversation": Probe(
        DEEP_SEND,
        lambda f: {
            "input": {
                "body": "frank was here",
                "clientMessageId": FORMER_CLIENT_ID,
                "conversationId": f.group_id,
            }
        },
    ),
}


async def test_every_path_to_a_conversation_has_a_probe(app: RunningApp) -> None:
    # given every field of the API that leads to a Conversation (or a page of them)
    schema = (await data(app.http, FIELD_TYPES))["__schema"]
    roots = {"Query", "Mutation", "Subscription"}
    paths = {
        f"{t['name']}.{field['name']}": t["name"]
        for t in schema["types"]
        if t["kind"] == "OBJECT"
        and not t["name"].startswith("__")
        and t["name"] != "ConversationEdge"
        for field in t["fields"] or []
        if _named(field["type"])["name"] in CONVERSATION_TYPES
    }
    assert {"Message.conversation", "Query.conversation", "Mutation.updateGroup"} <= paths.keys()
    # then a former member's way through each is tested
    problems = []
    for path, owner in sorted(paths.items()):
        field = path.split(".", 1)[1]
        in_matrix = (
            owner in roots
            and field in MATRIX
            and all(case.former is not None for case in _cases(field))
        )
        if not in_matrix and path not in PROBES:
            problems.append(
                f"{path} leads to a Conversation: add a PROBE (or a `former` MATRIX case) "
                "showing a former member gets nothing through it"
            )
    problems += [
        f"PROBES has {path}, which no longer leads to a Conversation"
        for path in sorted(PROBES.keys() - paths.keys())
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("path", sorted(PROBES))
async def test_a_former_member_reaches_nothing_through(
    app: RunningApp, path: str, standing: str
) -> None:
    # given a group frank was in
    former = await _build_former(app, standing)
    probe = PROBES[path]
    # when he takes this way towards it
    body = await graphql(
        app.http, probe.document, probe.variables(former), token=former.former.token
    )
    # then it leads nowhere, and tells him nothing that happened after he had gone
    if probe.check is None:
        field = _operation(probe.document)[1]
        _assert_refused(field, NOT_YOURS, body.get("errors"), body.get("data"))
    else:
        probe.check(former, body)
    _learns_nothing_new(body)


@pytest.mark.parametrize("standing", STANDINGS)
async def test_a_former_member_hears_nothing_of_the_group(
    server: RunningApp, standing: str
) -> None:
    # given a group frank was in, and a direct conversation with alice he is still in
    assert server.ws_url
    former = await _build_former(server, standing)
    # when he replays all his events from the very start, then alice writes to him directly
    async with subscribe(
        server.ws_url, former.former.token, DEEP_MY_EVENTS, {"after": "0"}
    ) as feed:
        await former.owner.send("ping", conversation_id=former.direct_id)
        events = [await feed.next()]
        while (events[-1].get("message") or {}).get("body") != "ping":
            events.append(await feed.next())
    # then of the group he hears only that his membership ended, and the rest is of the
    # conversation he is still in
    of_the_group = [event for event in events if event["conversationId"] != former.direct_id]
    assert [(e["__typename"], e["conversationId"]) for e in of_the_group] == [
        ("MembershipEndedEvent", former.group_id)
    ]
    assert [e["message"]["conversation"]["id"] for e in events if "message" in e] == [
        former.direct_id,
        former.direct_id,
    ]
    _learns_nothing_new(events)


# -- node(id:) over every Node type ---------------------------------------------------------

NODE_BRIEF = "query Node($id: ID!) { node(id: $id) { __typename id } }"
NODES_BRIEF = "query Nodes($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


async def _signed_in_admin(app: RunningApp) -> Account:
    await admin.create_admin(app.runtime, username="root", password=PASSWORD)
    payload = (await data(app.http, LOGIN, {"input": {"login": "root", "password": PASSWORD}}))[
        "login"
    ]
    return Account(
        app.http, payload["user"]["id"], "root", payload["accessToken"], payload["refreshToken"]
    )


async def _owners_attachment(app: RunningApp, world: World) -> tuple[Account, str]:
    upload = await media.upload(world.owner, media.png(), kind="IMAGE", content_type="image/png")
    sent = await media.send_media(world.owner, [upload], conversation_id=world.conversation_id)
    return world.owner, sent["attachments"][0]["id"]


async def _owners_account(app: RunningApp, world: World) -> tuple[Account, str]:
    return await _signed_in_admin(app), global_id(Kind.USER_ACCOUNT, pk(world.owner.id))


def _owners(attribute: str) -> Callable[[RunningApp, World], Awaitable[tuple[Account, str]]]:
    async def target(_app: RunningApp, world: World) -> tuple[Account, str]:
        return world.owner, getattr(world, attribute)

    return target


async def _owner_herself(_app: RunningApp, world: World) -> tuple[Account, str]:
    return world.owner, world.owner.id


async def _invitees_invitation(_app: RunningApp, world: World) -> tuple[Account, str]:
    """carol's invitation to alice's group: hers (and the group's members') to see."""
    return world.requester, world.invite_id


#: For each kind: someone entitled to see one object of it (alice, or an administrator for
#: her account as administrators see it), and its id.
NODE_TARGETS: dict[Kind, Callable[[RunningApp, World], Awaitable[tuple[Account, str]]]] = {
    Kind.USER: _owner_herself,
    Kind.CONVERSATION: _owners("conversation_id"),
    Kind.MESSAGE: _owners("message_id"),
    Kind.SESSION: _owners("other_session_id"),
    Kind.USER_ACCOUNT: _owners_account,
    Kind.UPLOAD: _owners("upload_id"),
    Kind.ATTACHMENT: _owners_attachment,
    Kind.FRIENDSHIP: _owners("friendship_id"),
    Kind.GROUP_INVITE: _invitees_invitation,
}


def test_every_node_kind_has_a_target() -> None:
    assert NODE_TARGETS.keys() == set(Kind)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.value)
async def test_node_over_every_kind_for_owner_and_stranger(app: RunningApp, kind: Kind) -> None:
    # given alice's world, an object of this kind that is hers to see, and mallory
    world = await _build_world(app)
    owner, target = await NODE_TARGETS[kind](app, world)
    before = await _owner_view(world.owner, world.conversation_id, world.group_id)
    # when its owner asks for it by id, alone and in a list
    mine = await data(app.http, NODE_BRIEF, {"id": target}, token=owner.token)
    listed = await data(app.http, NODES_BRIEF, {"ids": [target]}, token=owner.token)
    # then she gets it, as the type its id came from
    assert mine["node"] == {"__typename": kind.value, "id": target}
    assert listed["nodes"] == [mine["node"]]
    # and mallory gets null, exactly what an id naming nothing gets (a profile excepted)
    expected = mine["node"] if kind is Kind.USER else None
    for who in (world.stranger, world.blocked):
        for document, variables, field, answer in (
            (NODE_BRIEF, {"id": target}, "node", expected),
            (NODES_BRIEF, {"ids": [target, missing(kind)]}, "nodes", [expected, None]),
        ):
            body = await graphql(app.http, document, variables, token=who.token)
            assert body == {"data": {field: answer}}, (who.username, body)
    # and alice's things are as they were
    assert await _owner_view(world.owner, world.conversation_id, world.group_id) == before


async def test_a_suspended_user_is_nobodys_node(app: RunningApp) -> None:
    # given erin, suspended (user(id:) is NOT_FOUND for her)
    world = await _build_world(app)
    for who in (world.owner, world.stranger):
        body = await graphql(app.http, NODE_BRIEF, {"id": world.suspended.id}, token=who.token)
        assert body == {"data": {"node": None}}


# -- the blocked person ---------------------------------------------------------------------

#: Where a message id argument sits.
MESSAGE_ID_ARGUMENTS = frozenset({"messageId", "replyToId"})


@dataclass(frozen=True)
class BlockedWorld:
    """alice and dave wrote to each other; then alice blocked dave."""

    owner: Account  # alice
    blocked: Account  # dave
    other: Account  # erin: dave's other conversation
    direct_id: str  # alice and dave's DM
    owners_message_id: str  # alice's message there (pinned by alice before the block)
    blocked_message_id: str  # dave's message there
    other_direct_id: str  # dave and erin's DM
    other_message_id: str  # dave's message there


@dataclass(frozen=True)
class BlockedCase:
    document: str
    variables: Callable[[BlockedWorld], dict[str, Any]]
    #: Private to dave (nobody else learns of it): a block does not stop it.
    allowed: bool = False


BLOCKED_VIEW = f"""
query Direct($c: ID!) {{
  conversation(id: $c) {{
    lastSeq pinnedMessages {{ id }}
    messages(first: 100) {{ edges {{ node {{ seq body {MESSAGE_STATE} }} }} }}
  }}
}}
"""

#: Every message-taking field, as dave calls it in (or out of) the DM where alice blocked him.
BLOCKED: dict[str, BlockedCase] = {
    # Changing his own message, or alice's, in the DM: FORBIDDEN (reason BLOCKED), as sending.
    "editMessage": BlockedCase(EDIT_MESSAGE, lambda b: {"m": b.blocked_message_id}),
    "unsendMessage": BlockedCase(UNSEND_MESSAGE, lambda b: {"m": b.blocked_message_id}),
    "reactToMessage": BlockedCase(REACT_TO_MESSAGE, lambda b: {"m": b.owners_message_id}),
    "pinMessage": BlockedCase(PIN_MESSAGE, lambda b: {"m": b.blocked_message_id}),
    "unpinMessage": BlockedCase(UNPIN_MESSAGE, lambda b: {"m": b.owners_message_id}),
    # Playing her voice note tells her he listened: a message to her, refused like sending.
    "markPlayed": BlockedCase(MARK_PLAYED, lambda b: {"m": b.owners_message_id}),
    # Quoting into the DM is sending into it.
    "sendMessage": BlockedCase(
        SEND_MESSAGE,
        lambda b: {
            "input": {
                "body": "quote",
                "clientMessageId": "blocked-quote",
                "conversationId": b.direct_id,
                "replyToId": b.owners_message_id,
            }
        },
    ),
    # Forwarding into the DM is sending into it; out of it, he copies what he already sees.
    "forwardMessage": BlockedCase(
        FORWARD_MESSAGE, lambda b: _forward(b.other_message_id, b.direct_id)
    ),
    # His own bookmarks and his own history: nobody else learns of them.
    "starMessage": BlockedCase(STAR_MESSAGE, lambda b: {"m": b.owners_message_id}, allowed=True),
    "unstarMessage": BlockedCase(
        UNSTAR_MESSAGE, lambda b: {"m": b.owners_message_id}, allowed=True
    ),
    "deleteMessageForMe": BlockedCase(
        DELETE_MESSAGE_FOR_ME, lambda b: {"m": b.owners_message_id}, allowed=True
    ),
}


async def _build_blocked(app: RunningApp) -> BlockedWorld:
    alice, dave, erin = await asyncio.gather(*(register(app.http) for _ in range(3)))
    daves = await dave.send("hi alice", to=alice)
    direct_id = daves["conversationId"]
    alices = await alice.send("hi dave", conversation_id=direct_id)
    await alice.call(PIN_MESSAGE, m=alices["id"])
    other = await dave.send("hi erin", to=erin)
    await alice.call(BLOCK, u=dave.id)
    return BlockedWorld(
        alice,
        dave,
        erin,
        direct_id,
        alices["id"],
        daves["id"],
        other["conversationId"],
        other["id"],
    )


async def test_every_field_that_takes_a_message_id_has_a_blocked_case(app: RunningApp) -> None:
    discovered = await _fields_taking_ids(app)
    taking_messages = {
        field
        for field, (_, paths) in discovered.items()
        if any(path.split(".")[-1] in MESSAGE_ID_ARGUMENTS for path in paths)
    }
    assert {"editMessage", "reactToMessage", "sendMessage"} <= taking_messages
    assert taking_messages == BLOCKED.keys(), (
        "every field taking a message id says what a blocked person gets through it: "
        "add it to BLOCKED in tests/security/test_authorization_matrix.py"
    )


@pytest.mark.parametrize("field", sorted(BLOCKED))
async def test_a_blocked_person_changes_nothing_the_blocker_sees(
    app: RunningApp, field: str
) -> None:
    # given the DM where alice blocked dave, as alice sees it
    world = await _build_blocked(app)
    case = BLOCKED[field]
    before = await world.owner.call(BLOCKED_VIEW, c=world.direct_id)
    # when dave calls the field
    body = await graphql(app.http, case.document, case.variables(world), token=world.blocked.token)
    # then he is refused because of the block, unless it only concerns himself
    if case.allowed:
        assert not body.get("errors"), body["errors"]
    else:
        _assert_refused(field, frozenset({"FORBIDDEN"}), body.get("errors"), body.get("data"))
        reasons = {error["extensions"].get("reason") for error in body["errors"]}
        assert reasons == {"BLOCKED"}
    # and alice's conversation is as it was
    assert await world.owner.call(BLOCKED_VIEW, c=world.direct_id) == before
