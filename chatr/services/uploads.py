"""Uploads: the protocol every file takes into chatr, whatever it is for.

1. `create_upload` checks the declared kind, type and size against what chatr accepts
   (features: images, audio, video, documents; 50 MB), the per-user rate limit and storage
   quota, and records a pending upload. It answers where to send the bytes: a presigned S3
   POST whose policy enforces the type and size, or, on the embedded default, a signed URL
   of chatr's own upload endpoint (chatr.http.uploads), which streams to the media folder
   and enforces the size while the bytes arrive.
2. `finish` reads what actually arrived: its real type by magic bytes (chatr.infra.sniffing;
   the client's claim is never trusted, so an executable named `.jpg` is refused and
   deleted), an image's size and placeholder (its EXIF, GPS location included, removed), a
   WAV voice note's duration and 100-bar waveform, an MP4's duration.
3. The upload is then used: attached to a message (`sendMessage(uploadIds:)`) or made a
   picture (chatr.services.pictures). One used by nothing when it expires is deleted, with
   its bytes, by `sweep_forever` (supervised; shown on /readyz).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import unicodedata
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, func, select, update

from chatr import security
from chatr.errors import BadUserInput, Conflict, NotFound, QuotaExceeded
from chatr.infra import media_probe, rate_limits
from chatr.infra.sniffing import SNIFF_BYTES, Family, sniff
from chatr.infra.storage import TooLarge, temporary_file
from chatr.models import Attachment, AttachmentKind, Message, MessageKind, UploadPurpose
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import messages

log = logging.getLogger("chatr.uploads")

_IMAGES: dict[str, tuple[Family, ...]] = {
    "image/jpeg": (Family.JPEG,),
    "image/png": (Family.PNG,),
    "image/gif": (Family.GIF,),
    "image/webp": (Family.WEBP,),
}
_AUDIO: dict[str, tuple[Family, ...]] = {
    "audio/webm": (Family.MATROSKA,),
    "audio/mp4": (Family.MP4,),
    "audio/m4a": (Family.MP4,),
    "audio/x-m4a": (Family.MP4,),
    "audio/mpeg": (Family.MPEG_AUDIO,),
    "audio/ogg": (Family.OGG,),
    "audio/wav": (Family.WAV,),
    "audio/x-wav": (Family.WAV,),
    "audio/wave": (Family.WAV,),
}
_VIDEO: dict[str, tuple[Family, ...]] = {
    "video/mp4": (Family.MP4,),
    "video/quicktime": (Family.MP4,),
    "video/webm": (Family.MATROSKA,),
}
_DOCUMENTS: dict[str, tuple[Family, ...]] = {
    "application/pdf": (Family.PDF,),
    "application/msword": (Family.OLE,),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (Family.ZIP,),
    "application/vnd.ms-excel": (Family.OLE,),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (Family.ZIP,),
    "application/vnd.ms-powerpoint": (Family.OLE,),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (Family.ZIP,),
    "text/plain": (Family.TEXT,),
    "application/zip": (Family.ZIP,),
}
#: Every content type a message may carry, with the families its bytes may really be.
ALLOWED_TYPES: dict[str, tuple[Family, ...]] = {**_IMAGES, **_AUDIO, **_VIDEO, **_DOCUMENTS}
#: Which declared types each kind takes; a FILE may be any allowed type (a photo sent as a
#: document keeps its original bytes).
TYPES_BY_KIND: dict[AttachmentKind, frozenset[str]] = {
    AttachmentKind.IMAGE: frozenset(_IMAGES),
    AttachmentKind.AUDIO: frozenset(_AUDIO),
    AttachmentKind.VIDEO: frozenset(_VIDEO),
    AttachmentKind.FILE: frozenset(ALLOWED_TYPES),
}
#: Avatars and covers: JPEG, PNG or WebP, and their size caps (features: 5 MB, 10 MB).
PICTURE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
PICTURE_LIMITS = {UploadPurpose.AVATAR: 5 * 1024 * 1024, UploadPurpose.COVER: 10 * 1024 * 1024}
#: A voice note or video longer than this is not believed (client-supplied durations).
MAX_DURATION_SECONDS = 24 * 3600.0
MAX_FILE_NAME = 255


@dataclass(frozen=True)
class UploadTicket:
    """Where and how to send an upload's bytes."""

    upload: Attachment
    #: `PUT` the raw bytes to `url` (chatr's endpoint), or `POST` multipart/form-data with
    #: `fields` and then the file (S3).
    method: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


def content_type_of(value: str) -> str:
    return value.split(";")[0].strip().lower()


def file_name(value: str | None) -> str | None:
    """A name to show and to download as: no folders, no control characters, ≤ 255."""
    if value is None:
        return None
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if not name or name in {".", ".."}:
        raise BadUserInput("fileName is not a usable file name.", field="fileName")
    return name[:MAX_FILE_NAME]


def _duration(value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_DURATION_SECONDS:
        raise BadUserInput("durationSeconds must be above 0 and at most a day.", field="duration")
    return float(value)


def waveform(values: Sequence[float] | None) -> list[float] | None:
    """A client's waveform: exactly 100 bars, each from 0 to 1."""
    if values is None:
        return None
    if len(values) != media_probe.WAVEFORM_BARS or not all(
        math.isfinite(v) and 0.0 <= v <= 1.0 for v in values
    ):
        raise BadUserInput(
            f"waveform must be {media_probe.WAVEFORM_BARS} values from 0 to 1.", field="waveform"
        )
    return [float(v) for v in values]


def _declared(
    rt: Runtime, *, purpose: UploadPurpose, kind: AttachmentKind, content_type: str, size: int
) -> None:
    if purpose in PICTURE_LIMITS:
        if kind != AttachmentKind.IMAGE or content_type not in PICTURE_TYPES:
            raise BadUserInput(
                "Pictures are JPEG, PNG or WebP images.", field="contentType", reason="TYPE"
            )
        limit = PICTURE_LIMITS[purpose]
    else:
        if content_type not in TYPES_BY_KIND[kind]:
            raise BadUserInput(
                f"{content_type!r} is not a type chatr accepts for {kind.value}.",
                field="contentType",
                reason="TYPE",
            )
        limit = rt.settings.max_upload_bytes
    if not 0 < size <= limit:
        raise BadUserInput(
            f"size must be from 1 byte to {limit} bytes.",
            field="size",
            reason="TOO_LARGE" if size > limit else "EMPTY",
            maxBytes=limit,
        )


async def _used_storage(rt: Runtime, owner_id: int) -> int:
    async with rt.db.reader() as session:
        used = await session.scalar(
            select(func.coalesce(func.sum(Attachment.size_bytes), 0)).where(
                Attachment.owner_id == owner_id
            )
        )
    return int(used or 0)


def _public(rt: Runtime, path: str) -> str:
    return f"{rt.settings.public_url}{path}"


async def _record_pending(
    rt: Runtime,
    *,
    owner_id: int,
    kind: AttachmentKind,
    content_type: str,
    size: int,
    name: str | None,
    purpose: UploadPurpose,
    duration_seconds: float | None,
    claimed_waveform: Sequence[float] | None,
) -> Attachment:
    """Every check of a declared upload (type, size, rate, quota), then its pending row."""
    content_type = content_type_of(content_type)
    _declared(rt, purpose=purpose, kind=kind, content_type=content_type, size=size)
    name = file_name(name)
    claims: dict[str, Any] = {}
    duration = _duration(duration_seconds)
    if kind in (AttachmentKind.AUDIO, AttachmentKind.VIDEO) and duration is not None:
        claims["durationSeconds"] = duration
    if kind == AttachmentKind.AUDIO and (bars := waveform(claimed_waveform)) is not None:
        claims["waveform"] = bars
    await rt.limits.hit(rate_limits.UPLOAD, str(owner_id))
    quota = rt.settings.upload_quota_bytes
    if quota and await _used_storage(rt, owner_id) + size > quota:
        raise QuotaExceeded(
            "Your uploads would take more storage than your quota allows; unsend some.",
            field="size",
            quotaBytes=quota,
        )
    now = utcnow()
    upload = Attachment(
        owner_id=owner_id,
        storage_key=f"uploads/{owner_id}/{security.new_opaque_token()}",
        content_type=content_type,
        size_bytes=size,
        filename=name,
        kind=kind,
        purpose=purpose,
        extra={"claimed": claims} if claims else None,
        created_at=now,
        expires_at=now + timedelta(seconds=rt.settings.upload_ttl_seconds),
    )
    async with rt.db.session() as session, session.begin():
        session.add(upload)
    return upload


async def create_upload(
    rt: Runtime,
    *,
    owner_id: int,
    kind: AttachmentKind,
    content_type: str,
    size: int,
    name: str | None,
    purpose: UploadPurpose = UploadPurpose.MESSAGE,
    duration_seconds: float | None = None,
    claimed_waveform: Sequence[float] | None = None,
) -> UploadTicket:
    """Record a pending upload and say where its bytes go (see the module docstring)."""
    upload = await _record_pending(
        rt,
        owner_id=owner_id,
        kind=kind,
        content_type=content_type,
        size=size,
        name=name,
        purpose=purpose,
        duration_seconds=duration_seconds,
        claimed_waveform=claimed_waveform,
    )
    return _ticket(rt, upload, upload.created_at)


def _ticket(rt: Runtime, upload: Attachment, now: datetime) -> UploadTicket:
    """Where to send `upload`'s bytes, signed from `now` for `upload_url_ttl_seconds`."""
    ttl = rt.settings.upload_url_ttl_seconds
    expires_at = now + timedelta(seconds=ttl)
    form = rt.storage.post_form(
        upload.storage_key,
        content_type=upload.content_type,
        max_bytes=upload.size_bytes,
        expires_seconds=ttl,
    )
    if form is not None:
        return UploadTicket(upload, "POST", form.url, form.fields, expires_at)
    token = security.sign_media_token(
        purpose="upload",
        object_id=upload.id,
        expires_at=int(expires_at.timestamp()),
        secret=rt.settings.jwt_secret,
    )
    return UploadTicket(upload, "PUT", _public(rt, f"/media/uploads/{token}"), {}, expires_at)


async def upload_file(
    rt: Runtime,
    *,
    owner_id: int,
    kind: AttachmentKind,
    content_type: str,
    size: int,
    name: str | None,
    chunks: AsyncIterator[bytes],
    purpose: UploadPurpose = UploadPurpose.MESSAGE,
    duration_seconds: float | None = None,
    claimed_waveform: Sequence[float] | None = None,
) -> Attachment:
    """A file sent with the operation (the GraphQL multipart request): the same checks as
    `create_upload`, its bytes stored at once and checked as `finish` checks any upload."""
    upload = await _record_pending(
        rt,
        owner_id=owner_id,
        kind=kind,
        content_type=content_type,
        size=size,
        name=name,
        purpose=purpose,
        duration_seconds=duration_seconds,
        claimed_waveform=claimed_waveform,
    )
    await _store(rt, upload, chunks)
    return await finish(rt, upload)


async def _store(rt: Runtime, upload: Attachment, chunks: AsyncIterator[bytes]) -> None:
    try:
        await rt.storage.write(
            upload.storage_key,
            chunks,
            max_bytes=upload.size_bytes,
            content_type=upload.content_type,
        )
    except TooLarge:
        raise BadUserInput(
            f"The file is larger than the {upload.size_bytes} bytes declared.",
            field="size",
            reason="TOO_LARGE",
        ) from None


def _no_upload(field: str = "uploadId") -> NotFound:
    return NotFound("No such upload.", field=field)


async def ticket_for(rt: Runtime, *, owner_id: int, upload_id: int) -> UploadTicket:
    """A fresh ticket for one of the owner's uploads that nothing uses yet (how `node(id:)`
    shows an Upload again, with URLs signed anew). Anyone else's upload, one already used
    (attached or made a picture) and one expired are NOT_FOUND alike."""
    upload = await _pending(rt, upload_id)
    if upload.owner_id != owner_id or upload.message_id is not None or upload.expires_at is None:
        raise _no_upload("id")
    return _ticket(rt, upload, utcnow())


async def _pending(rt: Runtime, upload_id: int) -> Attachment:
    async with rt.db.reader() as session:
        upload = await session.get(Attachment, upload_id)
    if upload is None or (upload.expires_at is not None and upload.expires_at < utcnow()):
        raise _no_upload()
    return upload


async def receive(rt: Runtime, *, token: str, chunks: AsyncIterator[bytes]) -> Attachment:
    """chatr's upload endpoint: the bytes of the upload `token` signs, streamed to storage
    (no more than declared), then checked (`finish`)."""
    upload_id = security.verify_media_token(
        token, purpose="upload", secret=rt.settings.jwt_secret, now=time.time()
    )
    if upload_id is None:
        raise NotFound("This upload URL is not valid or has expired.", field="token")
    upload = await _pending(rt, upload_id)
    if upload.uploaded_at is not None:
        raise Conflict("This upload already has its bytes.", field="token")
    await _store(rt, upload, chunks)
    return await finish(rt, upload)


async def _refuse(rt: Runtime, upload: Attachment, message: str, reason: str) -> BadUserInput:
    """The bytes are not what was declared: they and the upload are deleted."""
    await rt.storage.delete(upload.storage_key)
    async with rt.db.session() as session, session.begin():
        await session.execute(delete(Attachment).where(Attachment.id == upload.id))
    return BadUserInput(message, field="file", reason=reason)


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


async def finish(rt: Runtime, upload: Attachment) -> Attachment:
    """Check and measure what arrived (see the module docstring); the upload is then ready.
    Idempotent: a finished upload is returned as it is."""
    if upload.uploaded_at is not None:
        return upload
    stored_size = await rt.storage.size(upload.storage_key)
    if stored_size is None:
        raise BadUserInput(
            "This upload has not received its bytes yet.", field="uploadIds", reason="PENDING"
        )
    if stored_size > upload.size_bytes:  # S3's policy enforces it; belt and braces
        raise await _refuse(rt, upload, "The file is larger than declared.", "TOO_LARGE")
    claimed = (upload.extra or {}).get("claimed")
    facts: dict[str, Any] = dict(claimed) if isinstance(claimed, dict) else {}
    async with rt.storage.local_copy(upload.storage_key) as path:
        family = sniff(await asyncio.to_thread(_read_head, path))
        if family == Family.EXECUTABLE:
            raise await _refuse(rt, upload, "Executable files are not accepted.", "EXECUTABLE")
        expected = ALLOWED_TYPES.get(upload.content_type, ())
        if family not in expected:
            raise await _refuse(
                rt,
                upload,
                f"The file is not {upload.content_type}, whatever its name says.",
                "TYPE_MISMATCH",
            )
        try:
            facts.update(await _probe(rt, upload, path, family))
        except media_probe.Unreadable as error:
            raise await _refuse(rt, upload, str(error), "UNREADABLE") from None
        size = await rt.storage.size(upload.storage_key) or stored_size
    now = utcnow()
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(Attachment)
            .where(Attachment.id == upload.id, Attachment.uploaded_at.is_(None))
            .values(uploaded_at=now, size_bytes=size, extra=facts)
        )
        finished = await session.get(Attachment, upload.id, populate_existing=True)
    if finished is None:
        raise _no_upload()
    return finished


async def _probe(rt: Runtime, upload: Attachment, path: Path, family: Family) -> dict[str, Any]:
    """What the server measures itself; it replaces whatever the client claimed."""
    if family in (Family.JPEG, Family.PNG, Family.GIF, Family.WEBP):
        async with temporary_file() as stripped:
            facts, was_stripped = await asyncio.to_thread(
                media_probe.image_facts_and_strip, path, stripped
            )
            if was_stripped:
                await rt.storage.put_file(
                    upload.storage_key, stripped, content_type=upload.content_type
                )
        return {"width": facts.width, "height": facts.height, "thumbnail": facts.thumbnail}
    if family == Family.WAV:
        audio = await asyncio.to_thread(media_probe.wav_facts, path)
        found: dict[str, Any] = {"durationSeconds": round(audio.duration_seconds, 3)}
        if audio.waveform is not None:
            found["waveform"] = audio.waveform
        return found
    if family == Family.MP4:
        duration = await asyncio.to_thread(media_probe.mp4_duration, path)
        return {} if duration is None else {"durationSeconds": round(duration, 3)}
    return {}


# -- using uploads -----------------------------------------------------------------------------


async def ready_for_message(
    rt: Runtime, *, owner_id: int, upload_ids: Sequence[int]
) -> list[Attachment]:
    """The sender's own unused, finished message uploads (finished now if the bytes went to
    S3 directly); anyone else's, or one already used, is NOT_FOUND."""
    if not upload_ids:
        raise BadUserInput("Pass at least one upload.", field="uploadIds")
    if len(set(upload_ids)) != len(upload_ids) or len(upload_ids) > 10:
        raise BadUserInput("Pass up to 10 different uploads.", field="uploadIds")
    async with rt.db.reader() as session:
        found = {
            upload.id: upload
            for upload in await session.scalars(
                select(Attachment).where(Attachment.id.in_(list(upload_ids)))
            )
        }
    ready = []
    now = utcnow()
    for upload_id in upload_ids:
        upload = found.get(upload_id)
        if (
            upload is None
            or upload.owner_id != owner_id
            or upload.purpose != UploadPurpose.MESSAGE
            or upload.message_id is not None
            or (upload.expires_at is not None and upload.expires_at < now)
        ):
            raise _no_upload("uploadIds")
        ready.append(await finish(rt, upload))
    return ready


def message_kind_of(uploads: Sequence[Attachment]) -> MessageKind:
    """A message's kind: its uploads' one kind, or FILE for a mix."""
    kinds = {upload.kind for upload in uploads}
    return MessageKind(kinds.pop().value) if len(kinds) == 1 else MessageKind.FILE


async def send_with_uploads(
    rt: Runtime,
    *,
    sender_id: int,
    upload_ids: Sequence[int],
    caption: str | None,
    client_id: str,
    conversation_id: int | None = None,
    recipient_id: int | None = None,
    reply_to_id: int | None = None,
) -> Message:
    """A photo, voice note, video or file message (chatr.services.messages.send with its
    uploads). A retry with the same client id finds its uploads used by the message it
    stored, and gets that message, after the same checks as a new send."""
    async with rt.db.reader() as session:
        earlier = await session.scalar(
            select(Message).where(Message.sender_id == sender_id, Message.client_id == client_id)
        )
    if earlier is not None:
        kind = earlier.kind
    else:
        kind = message_kind_of(
            await ready_for_message(rt, owner_id=sender_id, upload_ids=upload_ids)
        )
    return await messages.send(
        rt,
        sender_id=sender_id,
        body=caption,
        client_id=client_id,
        conversation_id=conversation_id,
        recipient_id=recipient_id,
        reply_to_id=reply_to_id,
        media=messages.Media(kind, tuple(upload_ids)),
    )


def download_url(rt: Runtime, attachment: Attachment) -> str:
    """A short-lived URL of the attachment's bytes. Only for those who may see what it is
    attached to: callers check that (a participant's message, a visible profile)."""
    ttl = rt.settings.download_url_ttl_seconds
    presigned = rt.storage.download_url(
        attachment.storage_key,
        expires_seconds=ttl,
        file_name=attachment.filename,
        content_type=attachment.content_type,
    )
    if presigned is not None:
        return presigned
    # Rounded up to the next TTL boundary: every render within a window signs the same URL
    # (one render of an event serves every member), and each lives at least `ttl` seconds.
    expires_at = (int(time.time()) // ttl + 2) * ttl
    token = security.sign_media_token(
        purpose="download",
        object_id=attachment.id,
        expires_at=expires_at,
        secret=rt.settings.jwt_secret,
    )
    name = quote(attachment.filename or "file", safe="")
    return _public(rt, f"/media/files/{token}/{name}")


@dataclass(frozen=True)
class Download:
    path: Path
    content_type: str
    file_name: str | None


async def local_download(rt: Runtime, *, token: str) -> Download:
    """chatr's download endpoint: the attachment a valid, unexpired token names, if it is
    still used (an unsent message's attachments are gone with it)."""
    attachment_id = security.verify_media_token(
        token, purpose="download", secret=rt.settings.jwt_secret, now=time.time()
    )
    if attachment_id is None:
        raise NotFound("This download URL is not valid or has expired.", field="token")
    async with rt.db.reader() as session:
        attachment = await session.get(Attachment, attachment_id)
    if attachment is None or attachment.uploaded_at is None:
        raise NotFound("No such file.", field="token")
    path = rt.storage.local_path(attachment.storage_key)
    if path is None:
        raise NotFound("Files are not served by chatr here.", field="token")
    return Download(path, attachment.content_type, attachment.filename)


async def delete_objects(rt: Runtime, keys: Sequence[str]) -> None:
    """Remove stored bytes whose records are gone (or going); a failure is logged and left
    to operators: the record is gone either way, so nothing links to the bytes."""
    for key in keys:
        try:
            await rt.storage.delete(key)
        except Exception:
            log.warning("could not delete stored object %s", key, exc_info=True)


# -- expiry ------------------------------------------------------------------------------------


async def sweep_expired(rt: Runtime, *, now: datetime | None = None, batch: int = 200) -> int:
    """Delete uploads still used by nothing once they expired, bytes first; returns how many."""
    now = now or utcnow()
    removed = 0
    while True:
        async with rt.db.reader() as session:
            expired = list(
                (
                    await session.execute(
                        select(Attachment.id, Attachment.storage_key)
                        .where(Attachment.expires_at < now, Attachment.message_id.is_(None))
                        .limit(batch)
                    )
                ).all()
            )
        if not expired:
            return removed
        await delete_objects(rt, [key for _, key in expired])
        async with rt.db.session() as session, session.begin():
            await session.execute(
                delete(Attachment).where(
                    Attachment.id.in_([upload_id for upload_id, _ in expired]),
                    Attachment.message_id.is_(None),
                    Attachment.expires_at < now,
                )
            )
        removed += len(expired)


#: The sweeper's name under the instance's supervisor (and on /readyz).
SWEEPER = "upload-sweeper"


async def sweep_forever(rt: Runtime) -> None:
    """The expired-upload sweeper, run as `SWEEPER`: degraded on /readyz while sweeps fail."""
    task = rt.supervisor.get(SWEEPER)
    assert task is not None, f"run sweep_forever as the supervised task {SWEEPER!r}"
    while True:
        try:
            removed = await sweep_expired(rt)
        except Exception as error:
            task.degraded(f"sweeping expired uploads failed: {error!r}")
        else:
            task.recovered()
            if removed:
                log.info("deleted %d expired uploads", removed)
        await asyncio.sleep(rt.settings.upload_sweep_seconds)
