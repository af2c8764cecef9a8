"""Changing a message after it was sent: edit, unsend, delete for me; and the one locked unit
of work every change to a message (reactions and pins too) runs in.

Every change that others see is a durable event, logged in the change's own transaction and
announced after commit, so a client that was offline replays edits, unsends, reactions and
pins from its cursor like messages. The event carries no text: a subscriber reads the message
as it is when the event is read (chatr.infra.event_log), so once a message is unsent no
event, old or new, can bring its content back.

On PostgreSQL each change first takes its conversation's advisory lock
(`event_log.serialised`), the lock sends and group changes take before their first write, so
one conversation's changes get transaction ids, and so log positions, in the order they
commit, and two changes to one message (an edit racing an unsend) run one after the other.
The message is then read again under the lock, with the viewer's membership: a member
removed meanwhile is refused like a stranger.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.db import insert_ignoring_conflicts
from chatr.errors import BadUserInput, Conflict, Forbidden
from chatr.infra import event_log, rate_limits
from chatr.models import (
    Attachment,
    Conversation,
    ConversationKind,
    EventType,
    MemberRole,
    Membership,
    Message,
    MessageHidden,
    MessageKind,
    MessageMention,
    MessagePlay,
    MessageRevision,
    MessageStar,
    Reaction,
)
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import mentions, message_access, uploads, validation
from chatr.services.social import blocks

#: Roles that may unsend other members' messages in a group (and pin there).
MODERATORS = frozenset({MemberRole.OWNER, MemberRole.ADMIN})


@dataclass
class MessageChange:
    """One change to one message in progress: its session, the message as read under the
    lock, and the events to announce once it commits."""

    session: AsyncSession
    message: Message
    conversation: Conversation
    membership: Membership
    actor_id: int
    now: datetime = field(default_factory=utcnow)
    announcements: list[envelopes.EventAnnounced] = field(default_factory=list)

    async def log(self, type: EventType, data: dict[str, object] | None = None) -> None:
        """Append the change's event (never with text in `data`: see the module docstring)."""
        await self.session.flush()
        event_id = await event_log.append(
            await self.session.connection(),
            type=type,
            conversation_id=self.message.conversation_id,
            actor_id=self.actor_id,
            message_id=self.message.id,
            seq=self.message.seq,
            data=data,
        )
        self.announcements.append(
            envelopes.EventAnnounced(
                event_id, self.message.conversation_id, type.value, self.message.seq
            )
        )

    @property
    def moderates(self) -> bool:
        """The actor runs this group (owner or admin)."""
        return (
            self.conversation.kind == ConversationKind.GROUP and self.membership.role in MODERATORS
        )

    def require_content(self) -> None:
        if self.message.deleted_at is not None:
            raise Conflict("This message was unsent.", field="messageId")


@asynccontextmanager
async def changing(
    rt: Runtime, *, viewer_id: int, message_id: int, field: str = "messageId"
) -> AsyncIterator[MessageChange]:
    """The message locked for a change by the viewer, who must see it (NOT_FOUND otherwise,
    chatr.services.message_access) and, in a DM, not be blocked either way (FORBIDDEN,
    reason BLOCKED). Announces the change's events after it commits."""
    async with rt.db.session() as session:
        async with session.begin():
            conversation_id = await message_access.conversation_of(
                session, message_id=message_id, field=field
            )
            if not rt.db.is_sqlite:
                await session.execute(select(event_log.serialised(conversation_id)))
            visible = await message_access.get_visible(
                session, viewer_id=viewer_id, message_id=message_id, field=field
            )
            if visible.conversation.kind == ConversationKind.DIRECT:
                await blocks.ensure_not_blocked_in(
                    session, user_id=viewer_id, conversation_id=conversation_id
                )
            change = MessageChange(
                session, visible.message, visible.conversation, visible.membership, viewer_id
            )
            yield change
            await session.flush()
        for announcement in change.announcements:
            await rt.announce(channels.conversation(conversation_id), announcement)


# -- edit --------------------------------------------------------------------------------


async def edit(rt: Runtime, *, viewer_id: int, message_id: int, body: str) -> Message:
    """Replace a text message's body (its sender only, within the edit window if one is set).

    Every version is kept as a `MessageRevision` with its editor and time: on the first edit
    the original too, so `editHistory` lists them all, oldest first. Mentions are resolved
    again from the new text. Sending the same text again changes nothing and logs nothing.
    """
    body = validation.message_body(body)
    await rt.limits.hit(rate_limits.EDIT_MESSAGE, str(viewer_id))
    async with changing(rt, viewer_id=viewer_id, message_id=message_id) as change:
        message = change.message
        if message.sender_id != viewer_id:
            raise Forbidden("Only the sender can edit a message.", field="messageId")
        change.require_content()
        if message.kind != MessageKind.TEXT:
            raise BadUserInput("Only text messages can be edited.", field="messageId")
        window = rt.settings.message_edit_window_seconds
        if window > 0 and change.now - message.created_at > timedelta(seconds=window):
            raise Forbidden(
                "The time to edit this message is over.",
                field="messageId",
                reason="EDIT_WINDOW_CLOSED",
            )
        if body == message.body:
            return message
        if message.edited_at is None:
            change.session.add(
                MessageRevision(
                    message_id=message.id,
                    body=message.body or "",
                    editor_id=message.sender_id,
                    created_at=message.created_at,
                )
            )
        change.session.add(
            MessageRevision(
                message_id=message.id, body=body, editor_id=viewer_id, created_at=change.now
            )
        )
        message.body = body
        message.edited_at = change.now
        if change.conversation.kind == ConversationKind.GROUP:
            mentioned = await mentions.resolve(
                change.session,
                conversation_id=message.conversation_id,
                author_id=viewer_id,
                body=body,
            )
            await mentions.replace(change.session, message=message, user_ids=mentioned)
        await change.log(EventType.MESSAGE_EDITED)
    return message


async def revisions_by_message(
    session: AsyncSession, *, message_ids: Collection[int]
) -> dict[int, list[MessageRevision]]:
    """`editHistory` of messages the caller already may see: every version, oldest first (an
    unedited message has none; an unsent one has none left). One query for a page."""
    found: dict[int, list[MessageRevision]] = {}
    rows = await session.scalars(
        select(MessageRevision)
        .where(MessageRevision.message_id.in_(list(message_ids)))
        .order_by(MessageRevision.message_id, MessageRevision.id)
    )
    for revision in rows:
        found.setdefault(revision.message_id, []).append(revision)
    return found


# -- unsend ------------------------------------------------------------------------------


async def unsend(rt: Runtime, *, viewer_id: int, message_id: int) -> Message:
    """Delete a message for everyone: its sender, or an owner or admin of its group.

    Its content leaves the database in the same transaction (`erase`), and its attachments'
    bytes leave storage once that committed; the row stays as a tombstone saying who removed
    it and when, so seqs stay gapless and replies keep their place. Unsending an unsent
    message again changes nothing.
    """
    stored: list[str] = []
    async with changing(rt, viewer_id=viewer_id, message_id=message_id) as change:
        message = change.message
        if message.deleted_at is not None:
            return message
        if message.kind == MessageKind.SYSTEM:
            raise BadUserInput("Group notices cannot be unsent.", field="messageId")
        if message.sender_id != viewer_id and not change.moderates:
            raise Forbidden(
                "Only the sender, or an admin of the group, can unsend this message.",
                field="messageId",
            )
        stored = list(
            await change.session.scalars(
                select(Attachment.storage_key).where(Attachment.message_id == message.id)
            )
        )
        await erase(change.session, message)
        message.deleted_at = change.now
        message.deleted_by_id = viewer_id
        await change.log(EventType.MESSAGE_DELETED)
    await uploads.delete_objects(rt, stored)
    return message


async def erase(session: AsyncSession, message: Message) -> None:
    """Remove everything that holds or derives from the message's content: its body, media
    metadata and link preview, the quote it carried, every revision, its attachments'
    records, reactions, mentions, stars and pin, and the excerpt in every reply quoting it
    (those snapshots become tombstones). Event rows never held text."""
    message.body = None
    message.extra = None
    message.link_preview = None
    message.reply_to_id = None
    message.reply_snapshot = None
    message.pinned_at = None
    message.pinned_by_id = None
    for model in (MessageRevision, Reaction, MessageMention, MessageStar, MessagePlay, Attachment):
        await session.execute(delete(model).where(model.message_id == message.id))
    quoting = await session.scalars(select(Message).where(Message.reply_to_id == message.id))
    for reply in quoting:
        snapshot = dict(reply.reply_snapshot or {"id": message.id, "kind": message.kind.value})
        snapshot.update(excerpt=None, deleted=True)
        reply.reply_snapshot = snapshot


# -- delete for me -----------------------------------------------------------------------


async def hide(rt: Runtime, *, viewer_id: int, message_id: int) -> bool:
    """Delete a message for the viewer only: gone from their history, search and unread
    counts (chatr.services.message_visibility), untouched for everyone else. Private: the
    durable event (MESSAGE_HIDDEN) is addressed to the viewer alone, so their other devices
    drop it too and nobody else learns of it. Hiding it again changes and logs nothing."""
    await rt.limits.hit(rate_limits.INBOX_CHANGE, str(viewer_id))
    position = None
    async with rt.db.session() as session, session.begin():
        visible = await message_access.get_visible(
            session, viewer_id=viewer_id, message_id=message_id
        )
        dialect_name = session.get_bind().dialect.name
        hidden = await session.execute(
            insert_ignoring_conflicts(dialect_name, MessageHidden.__table__)
            .values(message_id=message_id, user_id=viewer_id)
            .on_conflict_do_nothing(index_elements=["message_id", "user_id"])
        )
        # A hidden message is no longer one of my bookmarks either.
        await session.execute(
            delete(MessageStar).where(
                MessageStar.message_id == message_id, MessageStar.user_id == viewer_id
            )
        )
        if changed_rows(hidden):
            position = await log_for_viewer(
                session, EventType.MESSAGE_HIDDEN, message=visible.message, viewer_id=viewer_id
            )
    if position is not None:
        await announce_to_viewer(rt, viewer_id, visible.message, position, EventType.MESSAGE_HIDDEN)
    return True


# -- changes only the viewer sees -------------------------------------------------------


def changed_rows(result: object) -> int:
    """Rows an INSERT … ON CONFLICT DO NOTHING or a DELETE wrote (0: it changed nothing)."""
    return int(getattr(result, "rowcount", 0) or 0)


async def log_for_viewer(
    session: AsyncSession,
    type: EventType,
    *,
    message: Message,
    viewer_id: int,
    data: dict[str, object] | None = None,
) -> int:
    """Log a change to the viewer's own view of a message (hidden, starred) as an event
    addressed to them alone (`Event.audience_id`): their other devices catch up on it from
    a cursor like on anything else, and no other member ever receives it. Returns its
    position; announce it with `announce_to_viewer` once the transaction committed."""
    return await event_log.append(
        await session.connection(),
        type=type,
        conversation_id=message.conversation_id,
        actor_id=viewer_id,
        message_id=message.id,
        seq=message.seq,
        data=data,
        audience_id=viewer_id,
    )


async def announce_to_viewer(
    rt: Runtime, viewer_id: int, message: Message, position: int, type: EventType
) -> None:
    """Announce a `log_for_viewer` event: on the viewer's channel (their myEvents) and the
    conversation's (their conversationEvents); the fan-out gives it to them alone."""
    envelope = envelopes.EventAnnounced(position, message.conversation_id, type.value, message.seq)
    await rt.announce(channels.user(viewer_id), envelope)
    await rt.announce(channels.conversation(message.conversation_id), envelope)
