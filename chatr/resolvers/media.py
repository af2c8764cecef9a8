"""Uploads, media messages and voice notes: parse ids, call the services."""

from __future__ import annotations

from collections.abc import Sequence

from chatr.context import Context
from chatr.models import Attachment, AttachmentKind, Message
from chatr.services import attachments, uploads, validation
from chatr.services.uploads import UploadTicket


async def create_upload(
    ctx: Context,
    *,
    kind: AttachmentKind,
    content_type: str,
    size: int,
    file_name: str | None,
    duration_seconds: float | None,
    waveform: Sequence[float] | None,
) -> UploadTicket:
    viewer = await ctx.viewer()
    return await uploads.create_upload(
        ctx.runtime,
        owner_id=viewer.id,
        kind=kind,
        content_type=content_type,
        size=size,
        name=file_name,
        duration_seconds=duration_seconds,
        claimed_waveform=waveform,
    )


async def mark_played(ctx: Context, *, message_id: str) -> Message:
    viewer = await ctx.viewer()
    return await attachments.mark_played(
        ctx.runtime,
        viewer_id=viewer.id,
        message_id=validation.parse_id(message_id, field="messageId"),
    )


def download_url(ctx: Context, attachment: Attachment) -> str:
    """Only reached through a message the viewer may see (see chatr.services.attachments)."""
    return uploads.download_url(ctx.runtime, attachment)
