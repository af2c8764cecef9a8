"""Sending and reading messages."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import (
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers

from chatr.errors import BadUserInput, Conflict, Forbidden
from chatr.infra import event_log, rate_limits
from chatr.models import (
    Attachment,
    EventType,
    Membership,
    Message,
    MessageKind,
)
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import (
    accounts,
    conversations,
    mentions,
    message_visibility,
    replies,
    send_statements,
    validation,
)
from chatr.services.pagination import Page, PageRequest, paginate
from chatr.services.send_statements import (
    AlreadySent,
    NotPostable,
    StoredMessage,
    Unwritten,
    Written,
)
from chatr.services.social import blocks


@dataclass(frozen=True)
class Media:
    """What a media message carries: its kind and the uploads it takes (chatr.services.uploads
    found them ready and the sender's); they are attached in the send's own transaction."""

    kind: MessageKind
    upload_ids: tuple[int, ...]


def _as_loaded(**columns: Any) -> Message:
    """The stored message as if loaded from its row, for the answer to read: the declarative
    constructor would set each attribute through SQLAlchemy's instrumentation (change history,
    events), which cost about a quarter of `send`'s own CPU for an object only ever read."""
    mapper = Message.__mapper__
    if not mapper.configured:  # the constructor would have configured the mappers
        configure_mappers()
    message: Message = mapper.class_manager.new_instance()
    message.__dict__.update(columns)
    return message


async def _find_by_client_id(rt: Runtime, *, sender_id: int, client_id: str) -> Message | None:
    async with rt.db.reader() as session:
        return await session.scalar(
            select(Message).where(Message.sender_id == sender_id, Message.client_id == client_id)
        )


async def _explain_refusal(rt: Runtime, *, sender_id: int, conversation_id: int) -> NoReturn:
    """Why the send statement took no seq: the sender's account is gone, a block in a DM,
    the conversation does not exist, or the sender is not a member."""
    async with rt.db.reader() as session:
        await accounts.require_viewer(session, viewer_id=sender_id)
        await blocks.ensure_not_blocked_in(
            session, user_id=sender_id, conversation_id=conversation_id
        )
        await conversations.get_membership_or_raise(
            session, viewer_id=sender_id, conversation_id=conversation_id
        )
    raise Forbidden("You cannot post in this conversation.", field="conversationId")


async def _ensure_may_write_to(rt: Runtime, *, sender_id: int, recipient_id: int) -> None:
    """By recipient the DM may not exist yet, so the block rule is checked before it is made.
    (A vanished sender is refused where the DM is made, or by the send statement itself.)

    (Into an existing conversation they ride on the send statement itself, at no extra
    round trip.) Accepted race: a block committed between this check and the send lets that
    one message through, as if sent a moment before the block; later sends see it.
    """
    async with rt.db.reader() as session:
        await blocks.ensure_not_blocked(
            session, user_id=sender_id, other_id=recipient_id, field="recipientId"
        )


async def _replay(rt: Runtime, stored: StoredMessage) -> Message:
    """The message an earlier request with this client id stored, if this is the same request.

    Only reached once the send statement found the sender may post here now (it took the seq
    lock before the INSERT hit the unique index), so a replay passes the same permission
    checks as a new send. The same key for another body or conversation is CONFLICT: the
    client reused a key, and silently answering with the other message would lose this one.
    """
    existing = await _find_by_client_id(rt, sender_id=stored.sender_id, client_id=stored.client_id)
    if existing is None:
        async with rt.db.reader() as session:
            await accounts.require_viewer(session, viewer_id=stored.sender_id)
        raise RuntimeError("send broke an integrity rule other than a retry")
    if existing.conversation_id != stored.conversation_id or existing.body != stored.body:
        raise Conflict(
            "This clientMessageId was already used for a different message.",
            field="clientMessageId",
        )
    return existing


async def _store_with_media(rt: Runtime, stored: StoredMessage, media: Media) -> Written:
    """A media message: the step-by-step send (on PostgreSQL after the conversation's advisory
    lock, as every seq-taking transaction), then its kind and its uploads, in one transaction.
    An upload another send took meanwhile is CONFLICT, and nothing is stored."""
    async with rt.db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(select(event_log.serialised(stored.conversation_id)))
        written = await send_statements.store_step_by_step(connection, stored)
        await connection.execute(
            update(Message).where(Message.id == written.message_id).values(kind=media.kind)
        )
        attachments = Attachment.__table__
        attached = await connection.execute(
            update(attachments)
            .where(
                attachments.c.id.in_(media.upload_ids),
                attachments.c.owner_id == stored.sender_id,
                attachments.c.message_id.is_(None),
                attachments.c.uploaded_at.is_not(None),
            )
            .values(message_id=written.message_id, expires_at=None)
        )
        if attached.rowcount != len(media.upload_ids):
            raise Conflict("An upload was already used by another message.", field="uploadIds")
    return written


async def _store_on_postgresql(rt: Runtime, stored: StoredMessage) -> Written:
    """Through the instance's group commit, where sends that arrive together share a
    statement; one it did not write (its conversation busy, refused, its batch failed) and
    one that mentions someone go on their own (chatr.services.send_statements)."""
    if not stored.mention_ids:
        with contextlib.suppress(Unwritten):
            written: Written = await rt.sends.submit(stored.conversation_id, stored)
            return written
    return await send_statements.store_one(rt.db.autocommit_engine, stored)


async def _quote_and_mentions(
    rt: Runtime,
    *,
    sender_id: int,
    conversation_id: int,
    body: str,
    reply_to_id: int | None,
    resolve_mentions: bool,
) -> tuple[dict[str, Any] | None, list[int]]:
    """The reply's quote and the members the text mentions, in one read-only session (none
    at all for a text that neither replies nor names anyone)."""
    names_someone = resolve_mentions and bool(mentions.usernames_in(body))
    if reply_to_id is None and not names_someone:
        return None, []
    async with rt.db.reader() as session:
        snapshot = None
        if reply_to_id is not None:
            snapshot = await replies.snapshot(
                session,
                viewer_id=sender_id,
                conversation_id=conversation_id,
                reply_to_id=reply_to_id,
            )
        mentioned = []
        if names_someone:
            mentioned = await mentions.resolve(
                session, conversation_id=conversation_id, author_id=sender_id, body=body
            )
        return snapshot, mentioned


async def send(
    rt: Runtime,
    *,
    sender_id: int,
    body: str | None,
    client_id: str,
    conversation_id: int | None = None,
    recipient_id: int | None = None,
    reply_to_id: int | None = None,
    forwarded: bool = False,
    media: Media | None = None,
) -> Message:
    """Store a message and announce it. Idempotent per (sender, client_id).

    `reply_to_id` quotes an earlier message of the same conversation (chatr.services.replies);
    `@username`s in a group's text are resolved to members now (chatr.services.mentions),
    except in a forwarded copy, whose text its forwarder did not write. Both are read before
    the send, and only when asked for or named: a plain text costs what it always did.
    `media`: the uploads a photo, voice note, video or file message carries; `body` is then
    its optional caption.

    One transaction: take the conversation's row lock while incrementing `last_seq` (only if
    the sender may post there), insert the message unless the client id was already used,
    move the sender's own read marker, append to the event log. The lock serialises
    concurrent senders, so seqs are 1..N without gaps and commit in order; a concurrent retry
    of the same client id waits for the first and then finds the conflict (`_replay`). On
    PostgreSQL sends to other conversations that arrive meanwhile may share that transaction
    (chatr.services.send_statements): each keeps its own rules and its own answer.
    """
    # Announced to the group commit from here: the checks and the rate-limit round trip
    # before the send reaches it are what a batch about to start waits for (chatr.aio).
    with rt.sends.coming():
        if media is not None and body is not None and not body.strip():
            body = None  # an empty caption is no caption
        if body is not None or media is None:
            body = validation.message_body(body or "")
        client_id = validation.client_id(client_id)
        if (conversation_id is None) == (recipient_id is None):
            raise BadUserInput(
                "Pass exactly one of recipientId or conversationId.", field="recipientId"
            )
        await rt.limits.hit(rate_limits.SEND_MESSAGE, str(sender_id))
        if conversation_id is None:
            assert recipient_id is not None
            await _ensure_may_write_to(rt, sender_id=sender_id, recipient_id=recipient_id)
            conversation_id = await conversations.get_or_create_direct_id(
                rt, viewer_id=sender_id, recipient_id=recipient_id
            )

        snapshot, mention_ids = await _quote_and_mentions(
            rt,
            sender_id=sender_id,
            conversation_id=conversation_id,
            body=body or "",
            reply_to_id=reply_to_id,
            resolve_mentions=not forwarded,
        )
        now = utcnow()
        stored = StoredMessage(
            conversation_id,
            sender_id,
            client_id,
            body,
            now,
            reply_to_id=reply_to_id,
            reply_snapshot=snapshot,
            forwarded=forwarded,
            mention_ids=tuple(mention_ids),
        )
        try:
            if media is not None:
                written = await _store_with_media(rt, stored, media)
            elif rt.db.engine.dialect.name == "postgresql":
                written = await _store_on_postgresql(rt, stored)
            else:
                async with rt.db.engine.begin() as connection:
                    written = await send_statements.store_step_by_step(connection, stored)
        except AlreadySent:
            return await _replay(rt, stored)
        except NotPostable:
            await _explain_refusal(rt, sender_id=sender_id, conversation_id=conversation_id)
        await rt.announce(
            channels.conversation(conversation_id),
            envelopes.EventAnnounced(
                written.position, conversation_id, EventType.MESSAGE_POSTED.value, written.seq
            ),
        )
        return _as_loaded(
            id=written.message_id,
            conversation_id=conversation_id,
            seq=written.seq,
            sender_id=sender_id,
            client_id=client_id,
            kind=MessageKind.TEXT if media is None else media.kind,
            body=body,
            reply_to_id=reply_to_id,
            reply_snapshot=snapshot,
            forwarded=forwarded,
            created_at=now,
            edited_at=None,
            deleted_at=None,
            deleted_by_id=None,
            pinned_at=None,
            pinned_by_id=None,
        )


async def list_for(
    session: AsyncSession,
    *,
    viewer_id: int,
    conversation_id: int,
    page: PageRequest,
    membership: Membership | None = None,
) -> Page[Message]:
    """History, newest first, for a member of the conversation.

    `membership` may be passed when a loader already fetched the viewer's row (it is checked
    here all the same); otherwise it is looked up.
    """
    if membership is None:
        _, membership = await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )
    else:
        conversations.require_accepted(
            membership, viewer_id=viewer_id, conversation_id=conversation_id
        )
    statement = select(Message).where(
        Message.conversation_id == conversation_id,
        Message.seq > membership.cleared_seq,
        message_visibility.in_history_of(viewer_id),
    )
    return await paginate(
        session,
        statement,
        keys=(Message.seq,),
        descending=True,
        request=page,
        key_values=lambda m: (m.seq,),
    )


async def list_by_ids(session: AsyncSession, *, message_ids: Sequence[int]) -> list[Message]:
    result = await session.scalars(select(Message).where(Message.id.in_(list(message_ids))))
    return list(result)


async def list_by_conversation_seq(
    session: AsyncSession, *, keys: Sequence[tuple[int, int]]
) -> list[Message]:
    """Messages by (conversation_id, seq): how the inbox finds each last message."""
    result = await session.scalars(
        select(Message).where(tuple_(Message.conversation_id, Message.seq).in_(list(keys)))
    )
    return list(result)
