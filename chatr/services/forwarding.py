"""Forwarding: a copy of a message I see, sent by me to other conversations I may post in.

The copy is an ordinary message of mine, marked `forwarded`, sent through the one send path
(permissions, blocks, rate limit, idempotency). It records nothing of the original: not its
sender, conversation or id, so forwarding cannot carry the original sender's identity into
a conversation where someone blocked them (or that they are not in). Mentions in the text are
not resolved: the forwarder did not write them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chatr.errors import BadUserInput, Conflict
from chatr.models import Message, MessageKind
from chatr.runtime import Runtime
from chatr.services import message_access, messages, validation

#: Conversations one forward may reach.
MAX_TARGETS = 10


def copy_client_id(client_id: str, conversation_id: int) -> str:
    """The idempotency key of the copy sent to one conversation: retrying the forward with
    the same `clientMessageId` returns the same copies."""
    digest = hashlib.sha256(f"{client_id}\0{conversation_id}".encode()).hexdigest()
    return f"fwd-{digest[:48]}"


async def forward(
    rt: Runtime,
    *,
    viewer_id: int,
    message_id: int,
    conversation_ids: Sequence[int],
    client_id: str,
) -> list[Message]:
    """One copy per target conversation, in the order given."""
    client_id = validation.client_id(client_id)
    targets = list(dict.fromkeys(conversation_ids))
    if not 0 < len(targets) <= MAX_TARGETS:
        raise BadUserInput(
            f"Forward to 1-{MAX_TARGETS} conversations at a time.", field="conversationIds"
        )
    async with rt.db.reader() as session:
        original = (
            await message_access.get_visible(session, viewer_id=viewer_id, message_id=message_id)
        ).message
    if original.deleted_at is not None or original.body is None:
        raise Conflict("This message was unsent.", field="messageId")
    if original.kind != MessageKind.TEXT:
        raise BadUserInput("Only text messages can be forwarded.", field="messageId")
    return [
        await messages.send(
            rt,
            sender_id=viewer_id,
            body=original.body,
            client_id=copy_client_id(client_id, target),
            conversation_id=target,
            forwarded=True,
        )
        for target in targets
    ]
