"""Delivered/read receipts (durable) and typing (ephemeral)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import case, update

from chatr.errors import BadUserInput
from chatr.infra import event_log
from chatr.models import ConversationKind, EventType, Membership
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import conversations, message_requests
from chatr.services.social import blocks

#: Clients refresh typing every few seconds; a signal older than this is stale.
TYPING_TTL_SECONDS = 6.0


@dataclass(frozen=True)
class ReceiptState:
    conversation_id: int
    user_id: int
    last_read_seq: int
    last_delivered_seq: int


async def _advance(
    rt: Runtime, *, viewer_id: int, conversation_id: int, up_to_seq: int, read: bool
) -> ReceiptState:
    """Move the viewer's delivered (and, for reads, read) marker forward, never back."""
    if up_to_seq < 0:
        raise BadUserInput("upToSeq must not be negative.", field="upToSeq")
    async with rt.db.session() as session, session.begin():
        conversation, membership = await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )
        target = min(up_to_seq, conversation.last_seq)
        new_delivered = case(
            (Membership.last_delivered_seq < target, target),
            else_=Membership.last_delivered_seq,
        )
        values: dict[str, object] = {"last_delivered_seq": new_delivered}
        changed = Membership.last_delivered_seq < target
        if read:
            values["last_read_seq"] = case(
                (Membership.last_read_seq < target, target), else_=Membership.last_read_seq
            )
            changed = changed | (Membership.last_read_seq < target)
        row = (
            await session.execute(
                update(Membership)
                .where(Membership.id == membership.id, changed)
                .values(**values)
                .returning(Membership.last_read_seq, Membership.last_delivered_seq)
            )
        ).first()
        if row is None:
            return ReceiptState(
                conversation_id, viewer_id, membership.last_read_seq, membership.last_delivered_seq
            )
        last_read, last_delivered = row
        if message_requests.hides_activity_of(conversation, actor_id=viewer_id):
            # Recorded for the recipient's unread counts; told to nobody until they accept.
            return ReceiptState(conversation_id, viewer_id, last_read, last_delivered)
        marker = last_read if read else last_delivered
        event_id = await event_log.append(
            await session.connection(),
            type=EventType.RECEIPT_UPDATED,
            conversation_id=conversation_id,
            actor_id=viewer_id,
            seq=marker,
            data={"lastReadSeq": last_read, "lastDeliveredSeq": last_delivered},
        )
    await rt.announce(
        channels.conversation(conversation_id),
        envelopes.EventAnnounced(
            event_id, conversation_id, EventType.RECEIPT_UPDATED.value, marker
        ),
    )
    return ReceiptState(conversation_id, viewer_id, last_read, last_delivered)


async def mark_read(
    rt: Runtime, *, viewer_id: int, conversation_id: int, up_to_seq: int
) -> ReceiptState:
    return await _advance(
        rt, viewer_id=viewer_id, conversation_id=conversation_id, up_to_seq=up_to_seq, read=True
    )


async def mark_delivered(
    rt: Runtime, *, viewer_id: int, conversation_id: int, up_to_seq: int
) -> ReceiptState:
    return await _advance(
        rt, viewer_id=viewer_id, conversation_id=conversation_id, up_to_seq=up_to_seq, read=False
    )


async def set_typing(
    rt: Runtime,
    *,
    viewer_id: int,
    conversation_id: int,
    typing: bool,
    activity: envelopes.TypingActivity = envelopes.TypingActivity.TYPING,
) -> bool:
    """Typing (or recording a voice note: `activity`), told live to the conversation."""
    async with rt.db.reader() as session:
        conversation, _ = await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )
        if conversation.kind == ConversationKind.DIRECT:
            await blocks.ensure_not_blocked_in(
                session, user_id=viewer_id, conversation_id=conversation_id
            )
    if message_requests.hides_activity_of(conversation, actor_id=viewer_id):
        return typing  # the requester does not see the recipient typing until they accept
    await rt.announce(
        channels.conversation(conversation_id),
        envelopes.TypingChanged(
            conversation_id=conversation_id,
            user_id=viewer_id,
            typing=typing,
            expires_at=time.time() + TYPING_TTL_SECONDS if typing else time.time(),
            activity=activity.value,
        ),
    )
    return typing
