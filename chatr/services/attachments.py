"""What a media message carries, as its readers see it: its attachments (with short-lived
download URLs), and who played a voice note (`markPlayed`).

Attachments are read only through a message the reader already may see (the message
resolvers apply chatr.services.message_access's rule), so a download URL reaches current
participants only; it lives `download_url_ttl_seconds`, after which a client asks again.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.db import insert_ignoring_conflicts
from chatr.errors import BadUserInput, NotFound
from chatr.models import Attachment, EventType, Message, MessageKind, MessagePlay
from chatr.runtime import Runtime
from chatr.services import message_access, message_changes

#: Message kinds that carry attachments (a TEXT message never does: no query for it).
MEDIA_KINDS = frozenset({MessageKind.IMAGE, MessageKind.AUDIO, MessageKind.VIDEO, MessageKind.FILE})


async def by_message(
    session: AsyncSession, *, message_ids: Collection[int]
) -> dict[int, list[Attachment]]:
    """Each message's attachments, in upload order; one query for a page of messages."""
    found: dict[int, list[Attachment]] = {}
    rows = await session.scalars(
        select(Attachment)
        .where(Attachment.message_id.in_(list(message_ids)))
        .order_by(Attachment.message_id, Attachment.id)
    )
    for attachment in rows:
        assert attachment.message_id is not None
        found.setdefault(attachment.message_id, []).append(attachment)
    return found


async def visible(rt: Runtime, *, viewer_id: int, attachment_id: int) -> Attachment:
    """One attachment by id, only through its message: the viewer must see that message
    (chatr.services.message_access). An upload not attached to a message, and one of a
    message the viewer cannot see, are NOT_FOUND alike."""
    async with rt.db.reader() as session:
        attachment = await session.get(Attachment, attachment_id)
        if attachment is None or attachment.message_id is None:
            raise NotFound("No such attachment.", field="id")
        try:
            await message_access.get_visible(
                session, viewer_id=viewer_id, message_id=attachment.message_id
            )
        except NotFound:
            raise NotFound("No such attachment.", field="id") from None
    return attachment


async def players_by_message(
    session: AsyncSession, *, message_ids: Collection[int]
) -> dict[int, list[int]]:
    """Who played each voice note, first listener first."""
    found: dict[int, list[int]] = {}
    rows = await session.execute(
        select(MessagePlay.message_id, MessagePlay.user_id)
        .where(MessagePlay.message_id.in_(list(message_ids)))
        .order_by(MessagePlay.message_id, MessagePlay.id)
    )
    for message_id, user_id in rows:
        found.setdefault(message_id, []).append(user_id)
    return found


async def mark_played(rt: Runtime, *, viewer_id: int, message_id: int) -> Message:
    """The viewer played a voice note: recorded once, and told to the conversation as a
    durable MESSAGE_PLAYED event (its sender sees it was listened to). Playing one's own
    note records nothing."""
    async with message_changes.changing(rt, viewer_id=viewer_id, message_id=message_id) as change:
        message = change.message
        change.require_content()
        if message.kind != MessageKind.AUDIO:
            raise BadUserInput("Only voice notes are played.", field="messageId")
        if message.sender_id == viewer_id:
            return message
        dialect_name = change.session.get_bind().dialect.name
        inserted = await change.session.execute(
            insert_ignoring_conflicts(dialect_name, MessagePlay.__table__)
            .values(message_id=message.id, user_id=viewer_id, played_at=change.now)
            .on_conflict_do_nothing(index_elements=["message_id", "user_id"])
        )
        if inserted.rowcount:  # type: ignore[attr-defined]
            await change.log(EventType.MESSAGE_PLAYED)
    return message
