"""Group documents and a builder for groups with people in each role, all through GraphQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.support.api import Account

GROUP_FIELDS = """
  id kind name description avatarUrl coverUrl lastSeq myRole
  members { user { id } role state lastReadSeq lastDeliveredSeq }
  invitedMembers { user { id } state invitedBy { id } }
"""
CREATE_GROUP = f"""
mutation Create($input: CreateGroupInput!) {{ createGroup(input: $input) {{ {GROUP_FIELDS} }} }}
"""
UPDATE_GROUP = f"""
mutation Update($input: UpdateGroupInput!) {{ updateGroup(input: $input) {{ {GROUP_FIELDS} }} }}
"""
DELETE_GROUP = "mutation Delete($c: ID!) { deleteGroup(conversationId: $c) { conversationId } }"
INVITE = f"""
mutation Invite($c: ID!, $u: [ID!]!) {{
  inviteToGroup(conversationId: $c, userIds: $u) {{ {GROUP_FIELDS} }}
}}
"""
ACCEPT = f"""
mutation Accept($c: ID!) {{ acceptGroupInvite(conversationId: $c) {{ {GROUP_FIELDS} }} }}
"""
DECLINE = "mutation Decline($c: ID!) { declineGroupInvite(conversationId: $c) { conversationId } }"
LEAVE = "mutation Leave($c: ID!) { leaveGroup(conversationId: $c) { conversationId } }"
REMOVE = f"""
mutation Remove($c: ID!, $u: ID!) {{
  removeGroupMember(conversationId: $c, userId: $u) {{ {GROUP_FIELDS} }}
}}
"""
PROMOTE = f"""
mutation Promote($c: ID!, $u: ID!) {{
  promoteGroupMember(conversationId: $c, userId: $u) {{ {GROUP_FIELDS} }}
}}
"""
DEMOTE = f"""
mutation Demote($c: ID!, $u: ID!) {{
  demoteGroupMember(conversationId: $c, userId: $u) {{ {GROUP_FIELDS} }}
}}
"""
TRANSFER = f"""
mutation Transfer($c: ID!, $u: ID!) {{
  transferGroupOwnership(conversationId: $c, userId: $u) {{ {GROUP_FIELDS} }}
}}
"""
MY_INVITES = """
query { myGroupInvites { conversationId name description invitedBy { id } invitedAt } }
"""
GROUP = f"query Group($id: ID!) {{ conversation(id: $id) {{ {GROUP_FIELDS} }} }}"
HISTORY = """
query History($id: ID!) {
  conversation(id: $id) {
    messages(first: 100) {
      edges { node {
        seq kind body sender { id }
        system { action role name targets { id } }
      } }
    }
  }
}
"""


async def create_group(
    owner: Account,
    *,
    invitees: Sequence[Account] = (),
    name: str = "Team",
    **fields: Any,
) -> dict[str, Any]:
    group_input = {"name": name, "inviteeIds": [a.id for a in invitees], **fields}
    return (await owner.call(CREATE_GROUP, input=group_input))["createGroup"]


async def group_with(
    owner: Account,
    *,
    admins: list[Account] = (),  # type: ignore[assignment]
    members: list[Account] = (),  # type: ignore[assignment]
    pending: list[Account] = (),  # type: ignore[assignment]
) -> str:
    """A group owned by `owner`; people join in the order given (members first, then admins)."""
    joining = [*members, *admins]
    group = await create_group(owner, invitees=[*joining, *pending])
    for account in joining:
        await account.call(ACCEPT, c=group["id"])
    for account in admins:
        await owner.call(PROMOTE, c=group["id"], u=account.id)
    return group["id"]


async def group(account: Account, conversation_id: str) -> dict[str, Any]:
    return (await account.call(GROUP, id=conversation_id))["conversation"]


def roles(view: dict[str, Any]) -> dict[str, str]:
    """user id -> role of every accepted member."""
    return {m["user"]["id"]: m["role"] for m in view["members"]}


async def history(account: Account, conversation_id: str) -> list[dict[str, Any]]:
    """Oldest first."""
    result = await account.call(HISTORY, id=conversation_id)
    return [edge["node"] for edge in reversed(result["conversation"]["messages"]["edges"])]


def system_actions(messages: list[dict[str, Any]]) -> list[str]:
    return [m["system"]["action"] for m in messages if m["kind"] == "SYSTEM"]
