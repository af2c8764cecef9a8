"""Uploads, media messages and voice notes: parse ids, call the services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from starlette.datastructures import UploadFile

from chatr import global_ids
from chatr.context import Context
from chatr.errors import BadUserInput
from chatr.global_ids import Kind
from chatr.models import Attachment, AttachmentKind, Conversation, Message, UploadPurpose, User
from chatr.services import attachments, pictures, uploads
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
    purpose: UploadPurpose = UploadPurpose.MESSAGE,
) -> UploadTicket:
    viewer = await ctx.viewer()
    return await uploads.create_upload(
        ctx.runtime,
        owner_id=viewer.id,
        purpose=purpose,
        kind=kind,
        content_type=content_type,
        size=size,
        name=file_name,
        duration_seconds=duration_seconds,
        claimed_waveform=waveform,
    )


#: How much of a multipart file is read from its spool at a time.
_CHUNK = 256 * 1024


async def _chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(_CHUNK):
        yield chunk


async def upload_file(
    ctx: Context,
    *,
    file: object,
    kind: AttachmentKind,
    duration_seconds: float | None,
    waveform: Sequence[float] | None,
    purpose: UploadPurpose,
) -> Attachment:
    viewer = await ctx.viewer()
    if not isinstance(file, UploadFile):
        raise BadUserInput(
            "Send `file` as a file of a multipart request (the GraphQL multipart request "
            "spec), or use createUpload.",
            field="file",
        )
    await file.seek(0)
    return await uploads.upload_file(
        ctx.runtime,
        owner_id=viewer.id,
        purpose=purpose,
        kind=kind,
        content_type=file.content_type or "application/octet-stream",
        size=file.size if file.size is not None else 0,
        name=file.filename,
        chunks=_chunks(file),
        duration_seconds=duration_seconds,
        claimed_waveform=waveform,
    )


async def mark_played(ctx: Context, *, message_id: str) -> Message:
    viewer = await ctx.viewer()
    return await attachments.mark_played(
        ctx.runtime,
        viewer_id=viewer.id,
        message_id=global_ids.decode(message_id, Kind.MESSAGE, field="messageId"),
    )


def download_url(ctx: Context, attachment: Attachment) -> str:
    """Only reached through a message the viewer may see (see chatr.services.attachments)."""
    return uploads.download_url(ctx.runtime, attachment)


def _upload_id(value: str | None) -> int | None:
    return None if value is None else global_ids.decode(value, Kind.UPLOAD, field="uploadId")


async def set_profile_picture(
    ctx: Context, *, purpose: UploadPurpose, upload_id: str | None
) -> User:
    viewer = await ctx.viewer()
    return await pictures.set_for_user(
        ctx.runtime, viewer_id=viewer.id, purpose=purpose, upload_id=_upload_id(upload_id)
    )


async def set_group_picture(
    ctx: Context, *, conversation_id: str, purpose: UploadPurpose, upload_id: str | None
) -> Conversation:
    viewer = await ctx.viewer()
    return await pictures.set_for_group(
        ctx.runtime,
        viewer_id=viewer.id,
        conversation_id=global_ids.decode(
            conversation_id, Kind.CONVERSATION, field="conversationId"
        ),
        purpose=purpose,
        upload_id=_upload_id(upload_id),
    )


def picture_variant(url: str | None, purpose: UploadPurpose, variant: str) -> str | None:
    """A stored avatar or cover URL in the size asked for (BAD_USER_INPUT for another)."""
    return pictures.variant_url(url, pictures.check_variant(purpose, variant))
