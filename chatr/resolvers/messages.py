"""Sending messages and reading a conversation's history."""

from __future__ import annotations

from collections.abc import Sequence

from chatr import global_ids
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import Message
from chatr.services import link_previews, messages, uploads
from chatr.services.pagination import Page, PageRequest


async def send_message(
    ctx: Context,
    *,
    body: str | None,
    client_message_id: str,
    recipient_id: str | None,
    conversation_id: str | None,
    reply_to_id: str | None = None,
    upload_ids: Sequence[str] | None = None,
) -> Message:
    viewer = await ctx.viewer()
    recipient = (
        None
        if recipient_id is None
        else global_ids.decode(recipient_id, Kind.USER, field="recipientId")
    )
    conversation = (
        None
        if conversation_id is None
        else global_ids.decode(conversation_id, Kind.CONVERSATION, field="conversationId")
    )
    reply_to = (
        None
        if reply_to_id is None
        else global_ids.decode(reply_to_id, Kind.MESSAGE, field="replyToId")
    )
    if upload_ids:
        return await uploads.send_with_uploads(
            ctx.runtime,
            sender_id=viewer.id,
            upload_ids=global_ids.decode_all(upload_ids, Kind.UPLOAD, field="uploadIds"),
            caption=body,
            client_id=client_message_id,
            recipient_id=recipient,
            conversation_id=conversation,
            reply_to_id=reply_to,
        )
    message = await messages.send(
        ctx.runtime,
        sender_id=viewer.id,
        body=body,
        client_id=client_message_id,
        recipient_id=recipient,
        conversation_id=conversation,
        reply_to_id=reply_to,
    )
    link_previews.schedule(ctx.runtime, message)
    return message


async def history(ctx: Context, *, conversation_id: int, page: PageRequest) -> Page[Message]:
    viewer = await ctx.viewer()
    membership = await ctx.loaders.membership.load((conversation_id, viewer.id))
    async with ctx.runtime.db.reader() as session:
        return await messages.list_for(
            session,
            viewer_id=viewer.id,
            conversation_id=conversation_id,
            page=page,
            membership=membership,
        )
