"""Documents for changing messages after they were sent, shared by the message tests."""

from __future__ import annotations

from typing import Any

from tests.support.api import Account

MESSAGE_FIELDS = """
  id seq kind body editedAt deletedAt forwarded pinnedAt
  deletedBy { id } pinnedBy { id } sender { id }
  editHistory { body createdAt editor { id } }
  reactions { emoji count reactedByMe reactors { id } }
  replyTo { messageId seq kind excerpt senderName sender { id } deleted }
  mentions { id }
"""
EDIT = f"""
mutation Edit($m: ID!, $body: String!) {{
  editMessage(messageId: $m, body: $body) {{ {MESSAGE_FIELDS} }}
}}
"""
UNSEND = f"mutation Unsend($m: ID!) {{ unsendMessage(messageId: $m) {{ {MESSAGE_FIELDS} }} }}"
DELETE_FOR_ME = "mutation Hide($m: ID!) { deleteMessageForMe(messageId: $m) { messageId } }"
REACT = f"""
mutation React($m: ID!, $e: String!) {{
  reactToMessage(messageId: $m, emoji: $e) {{ {MESSAGE_FIELDS} }}
}}
"""
FORWARD = f"""
mutation Forward($input: ForwardMessageInput!) {{
  forwardMessage(input: $input) {{ {MESSAGE_FIELDS} conversationId clientMessageId }}
}}
"""
PIN = f"mutation Pin($m: ID!) {{ pinMessage(messageId: $m) {{ {MESSAGE_FIELDS} }} }}"
UNPIN = f"mutation Unpin($m: ID!) {{ unpinMessage(messageId: $m) {{ {MESSAGE_FIELDS} }} }}"
STAR = "mutation Star($m: ID!) { starMessage(messageId: $m) { id starred } }"
UNSTAR = "mutation Unstar($m: ID!) { unstarMessage(messageId: $m) { id starred } }"
STARRED = "query { starredMessages(first: 50) { edges { node { id body starred } } } }"
HISTORY = f"""
query History($id: ID!) {{
  conversation(id: $id) {{
    unreadCount mentionCount
    pinnedMessages {{ id }}
    messages(first: 100) {{ edges {{ node {{ {MESSAGE_FIELDS} starred }} }} }}
  }}
}}
"""
REPLY = """
mutation Reply($input: SendMessageInput!) {
  sendMessage(input: $input) {
    id seq body replyTo { messageId seq kind excerpt senderName sender { id } deleted }
    mentions { id }
  }
}
"""


async def history(account: Account, conversation_id: str) -> dict[str, Any]:
    """The conversation as `account` sees it, with its messages oldest first."""
    found = (await account.call(HISTORY, id=conversation_id))["conversation"]
    found["messages"] = [edge["node"] for edge in reversed(found["messages"]["edges"])]
    return found


async def reply(
    account: Account, body: str, *, conversation_id: str, reply_to: str, client_id: str
) -> dict[str, Any]:
    message_input = {
        "body": body,
        "conversationId": conversation_id,
        "replyToId": reply_to,
        "clientMessageId": client_id,
    }
    return (await account.call(REPLY, input=message_input))["sendMessage"]
