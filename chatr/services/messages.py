"""Sending and reading messages."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import asyncpg
from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    ColumnElement,
    Select,
    Update,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import configure_mappers

from chatr.db import insert_ignoring_conflicts
from chatr.errors import BadUserInput, Conflict, Forbidden
from chatr.infra import event_log, precompiled, rate_limits
from chatr.infra.precompiled import Precompiled
from chatr.models import (
    Attachment,
    Conversation,
    ConversationStatus,
    EventType,
    Membership,
    MembershipState,
    Message,
    MessageKind,
    MessageMention,
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
    validation,
)
from chatr.services.pagination import Page, PageRequest, paginate
from chatr.services.social import blocks


class _AlreadySent(Exception):
    """Unwinds the send transaction when this client id was already used by the sender."""


class _NotPostable(Exception):
    """Unwinds the send transaction when the conversation is missing or not the sender's."""


@dataclass(frozen=True)
class Media:
    """What a media message carries: its kind and the uploads it takes (chatr.services.uploads
    found them ready and the sender's); they are attached in the send's own transaction."""

    kind: MessageKind
    upload_ids: tuple[int, ...]


_conversations = Conversation.__table__
_memberships = Membership.__table__
_messages = Message.__table__
_mentions = MessageMention.__table__


def _parameter(name: str, column: ColumnElement[Any]) -> BindParameter[Any]:
    return bindparam(f"b_{name}", type_=column.type)


# Sending is the hottest write: its statements are built once, as Core, with bind parameters
# (constructing and ORM-executing them per call cost more CPU than the database work). Both
# paths (one statement on PostgreSQL, step by step elsewhere) are assembled from these same
# fragments, with the same parameters (`StoredMessage.parameters`).
_CONVERSATION_ID = _parameter("conversation_id", _messages.c.conversation_id)
_SENDER_ID = _parameter("sender_id", _messages.c.sender_id)
_NOW = _parameter("now", _messages.c.created_at)

#: Take the next seq (the conversation's row lock) if the sender may post: an accepted member,
#: and no block between the two people of a DM.
_TAKE_NEXT_SEQ = (
    update(_conversations)
    .where(
        _conversations.c.id == _CONVERSATION_ID,
        # Re-checked on the row's newest version after waiting for its lock: a send that
        # waited for a deletion for everyone takes no seq in what is left of it.
        _conversations.c.deleted_at.is_(None),
        exists().where(
            _memberships.c.conversation_id == _CONVERSATION_ID,
            _memberships.c.user_id == _SENDER_ID,
            _memberships.c.state == MembershipState.ACCEPTED,
        ),
        blocks.no_block_in_direct(_CONVERSATION_ID, _SENDER_ID),
    )
    .values(
        last_seq=_conversations.c.last_seq + 1,
        last_activity_at=_NOW,
        # A reply from the person asked accepts a message request.
        status=case(
            (
                (_conversations.c.status == ConversationStatus.PENDING)
                & (_conversations.c.created_by_id != _SENDER_ID),
                ConversationStatus.ACTIVE,
            ),
            else_=_conversations.c.status,
        ),
    )
    .returning(_conversations.c.last_seq)
)


def _message_values(seq: ColumnElement[int]) -> dict[str, ColumnElement[Any]]:
    """The new message's row, at `seq`."""
    return {
        "conversation_id": _CONVERSATION_ID,
        "seq": seq,
        "sender_id": _SENDER_ID,
        "client_id": _parameter("client_id", _messages.c.client_id),
        "kind": literal(MessageKind.TEXT, type_=_messages.c.kind.type),
        "body": _parameter("body", _messages.c.body),
        "reply_to_id": _parameter("reply_to_id", _messages.c.reply_to_id),
        "reply_snapshot": _parameter("reply_snapshot", _messages.c.reply_snapshot),
        "forwarded": _parameter("forwarded", _messages.c.forwarded),
        "created_at": _NOW,
    }


def _mark_own_message_read(conversation_id: ColumnElement[int], seq: ColumnElement[int]) -> Update:
    """Sending implies having read everything up to one's own message."""
    return (
        update(_memberships)
        .where(
            _memberships.c.conversation_id == conversation_id,
            _memberships.c.user_id == _SENDER_ID,
        )
        .values(last_read_seq=seq, last_delivered_seq=seq)
    )


_SEQ = _parameter("seq", _messages.c.seq)
_MARK_OWN_MESSAGE_READ = _mark_own_message_read(_CONVERSATION_ID, _SEQ)


@functools.cache
def _insert_message(dialect_name: str) -> Any:
    return (
        insert_ignoring_conflicts(dialect_name, _messages)
        .values(_message_values(_SEQ))
        .on_conflict_do_nothing(index_elements=["sender_id", "client_id"])
        .returning(_messages.c.id)
    )


@functools.cache
def _send_in_one_statement(*, with_mentions: bool) -> Select[int, int, int, int]:
    """PostgreSQL: the whole send as one statement, run in autocommit: one round trip.

    Statement-level atomicity does the transaction's job. A reused client id makes the INSERT
    violate its unique index (no ON CONFLICT here), which aborts the whole statement, the seq
    increment included, so no gap; a sender who may not post takes no seq, so nothing
    downstream happens. Each step reads the previous one's RETURNING, which fixes the order
    rows are locked in: conversation (the seq lock), then the sender's membership — the same
    order as the step-by-step version, so the two can never deadlock each other.

    The conversation's advisory lock (`event_log.serialised`) is an InitPlan of the seq
    UPDATE's WHERE: taken before the UPDATE writes, i.e. before this transaction has an xid,
    so one conversation's sends get xids in seq order. Nothing is shared with sends to other
    conversations: the event's id comes from a sequence.
    """
    taken = _TAKE_NEXT_SEQ.where(event_log.serialised(_CONVERSATION_ID)).cte("taken")
    values = _message_values(taken.c.last_seq)
    inserted = (
        insert(_messages)
        .from_select(list(values), select(*values.values()))
        .returning(_messages.c.id, _messages.c.conversation_id, _messages.c.seq)
        .cte("inserted")
    )
    own_read = (
        _mark_own_message_read(inserted.c.conversation_id, inserted.c.seq)
        .returning(_memberships.c.id)
        .cte("own_read")
    )
    logged = event_log.append_from(
        for_each=inserted,
        only_if=exists(select(own_read.c.id)),
        type=EventType.MESSAGE_POSTED,
        conversation_id=inserted.c.conversation_id,
        actor_id=_SENDER_ID,
        message_id=inserted.c.id,
        seq=inserted.c.seq,
        created_at=_NOW,
    ).cte("logged")
    statement = select(inserted.c.id, inserted.c.seq, logged.c.xid, logged.c.id).select_from(
        inserted.join(logged, true())
    )
    if with_mentions:
        # Its own step, only in the statement for texts that mention someone: most don't.
        named = func.unnest(_MENTION_IDS).table_valued("user_id").render_derived(name="named")
        mentioned = (
            insert(_mentions)
            .from_select(
                ["message_id", "user_id", "conversation_id", "seq"],
                select(
                    inserted.c.id, named.c.user_id, inserted.c.conversation_id, inserted.c.seq
                ).select_from(inserted.join(named, true())),
            )
            .returning(_mentions.c.id)
            .cte("mentioned")
        )
        statement = statement.add_cte(mentioned)
    return statement


_MENTION_IDS = bindparam("b_mention_ids", type_=ARRAY(BigInteger))


@dataclass(frozen=True)
class StoredMessage:
    conversation_id: int
    sender_id: int
    client_id: str
    body: str | None
    now: datetime
    reply_to_id: int | None = None
    reply_snapshot: dict[str, Any] | None = None
    forwarded: bool = False
    #: Members the text mentions (resolved before the send; chatr.services.mentions).
    mention_ids: tuple[int, ...] = ()

    def parameters(self) -> dict[str, Any]:
        """The bind parameters of both send paths (by hand: `asdict` deep-copies, which cost
        more than building the statement's parameters)."""
        parameters = {
            "b_conversation_id": self.conversation_id,
            "b_sender_id": self.sender_id,
            "b_client_id": self.client_id,
            "b_body": self.body,
            "b_reply_to_id": self.reply_to_id,
            "b_reply_snapshot": self.reply_snapshot,
            "b_forwarded": self.forwarded,
            "b_now": self.now,
        }
        if self.mention_ids:
            parameters["b_mention_ids"] = list(self.mention_ids)
        return parameters


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


@functools.lru_cache(maxsize=16)
def _precompiled_send(dialect: Dialect, *, with_mentions: bool) -> Precompiled:
    return Precompiled(_send_in_one_statement(with_mentions=with_mentions), dialect)


async def _store_in_one_statement(rt: Runtime, stored: StoredMessage) -> tuple[int, int, int]:
    """Run straight on asyncpg (chatr.infra.precompiled): the hottest statement of all."""
    engine = rt.db.autocommit_engine
    statement = _precompiled_send(engine.dialect, with_mentions=bool(stored.mention_ids))
    try:
        row = await precompiled.fetch_row(engine, statement, stored.parameters())
    except asyncpg.IntegrityConstraintViolationError as error:
        raise _AlreadySent from error
    if row is None:
        raise _NotPostable
    message_id, seq, xid, event_id = row
    return message_id, seq, event_log.position_of(xid, event_id)


async def _store_step_by_step(
    connection: AsyncConnection, stored: StoredMessage
) -> tuple[int, int, int]:
    """The same transaction as separate statements, for SQLite (which serialises writers)."""
    parameters = stored.parameters()
    seq = await connection.scalar(_TAKE_NEXT_SEQ, parameters)
    if seq is None:
        raise _NotPostable
    parameters["b_seq"] = seq
    message_id = await connection.scalar(_insert_message(connection.dialect.name), parameters)
    if message_id is None:
        raise _AlreadySent
    await connection.execute(_MARK_OWN_MESSAGE_READ, parameters)
    if stored.mention_ids:
        await connection.execute(
            insert(_mentions),
            [
                {
                    "message_id": message_id,
                    "user_id": user_id,
                    "conversation_id": stored.conversation_id,
                    "seq": seq,
                }
                for user_id in stored.mention_ids
            ],
        )
    event_id = await event_log.append(
        connection,
        type=EventType.MESSAGE_POSTED,
        conversation_id=stored.conversation_id,
        actor_id=stored.sender_id,
        message_id=message_id,
        seq=seq,
    )
    return message_id, seq, event_id


async def _store_with_media(
    rt: Runtime, stored: StoredMessage, media: Media
) -> tuple[int, int, int]:
    """A media message: the step-by-step send (on PostgreSQL after the conversation's advisory
    lock, as every seq-taking transaction), then its kind and its uploads, in one transaction.
    An upload another send took meanwhile is CONFLICT, and nothing is stored."""
    async with rt.db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(select(event_log.serialised(stored.conversation_id)))
        message_id, seq, event_id = await _store_step_by_step(connection, stored)
        await connection.execute(
            update(_messages).where(_messages.c.id == message_id).values(kind=media.kind)
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
            .values(message_id=message_id, expires_at=None)
        )
        if attached.rowcount != len(media.upload_ids):
            raise Conflict("An upload was already used by another message.", field="uploadIds")
    return message_id, seq, event_id


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
    of the same client id waits for the first and then finds the conflict (`_replay`).
    """
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
            message_id, seq, event_id = await _store_with_media(rt, stored, media)
        elif rt.db.engine.dialect.name == "postgresql":
            message_id, seq, event_id = await _store_in_one_statement(rt, stored)
        else:
            async with rt.db.engine.begin() as connection:
                message_id, seq, event_id = await _store_step_by_step(connection, stored)
    except _AlreadySent:
        return await _replay(rt, stored)
    except _NotPostable:
        await _explain_refusal(rt, sender_id=sender_id, conversation_id=conversation_id)
    await rt.announce(
        channels.conversation(conversation_id),
        envelopes.EventAnnounced(event_id, conversation_id, EventType.MESSAGE_POSTED.value, seq),
    )
    return _as_loaded(
        id=message_id,
        conversation_id=conversation_id,
        seq=seq,
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
