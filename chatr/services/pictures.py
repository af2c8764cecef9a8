"""Avatars and covers of people and groups, uploaded through the same protocol as any file
(chatr.services.uploads, with purpose AVATAR or COVER: JPEG, PNG or WebP, at most 5 MB /
10 MB), then resized with Pillow to the sizes every client shows: avatars as 400, 320 and 96
pixel squares, covers as 1200x600 and 600x300 (centred crops, JPEG, EXIF gone).

The resized files are kept under `pictures/<random>/<variant>.jpg` and served at a stable,
unguessable URL (`/media/pictures/<random>/<variant>.jpg`: chatr serves the local file, or
redirects to a presigned S3 GET), which is what `avatarUrl`/`coverUrl` hold; like the
external URLs they replace, anyone handed one may load it, and chatr hands them out under
the profile's rules (nobody blocked). The original upload is deleted once resized; a picture
replaced or removed is deleted with its files. A change is a durable PROFILE_UPDATED event
(chatr.services.profile_events) or, for a group, a SYSTEM message, as for any other edit.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import select, update

from chatr.errors import BadUserInput, NotFound
from chatr.infra import media_probe
from chatr.infra.storage import temporary_file
from chatr.models import Attachment, Conversation, UploadPurpose, User
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import groups, profiles, uploads
from chatr.services.picture_files import VARIANTS, discard, parse_url, variant_key

#: The model column each purpose sets.
COLUMNS = {UploadPurpose.AVATAR: "avatar_url", UploadPurpose.COVER: "cover_url"}


def _token_of(upload: Attachment) -> str:
    return upload.storage_key.rsplit("/", 1)[-1]


def variant_url(url: str | None, variant: str) -> str | None:
    """The same picture in another size (external URLs have only the one)."""
    parsed = parse_url(url)
    if url is None or parsed is None:
        return url
    return url[: -len(f"{parsed[1]}.jpg")] + f"{variant}.jpg"


async def _resized(rt: Runtime, *, owner_id: int, upload_id: int, purpose: UploadPurpose) -> str:
    """The upload checked, resized into its variants and marked used; the picture's URL."""
    async with rt.db.reader() as session:
        upload = await session.get(Attachment, upload_id)
    if (
        upload is None
        or upload.owner_id != owner_id
        or upload.purpose != purpose
        or upload.expires_at is None
        or upload.expires_at < utcnow()
    ):
        raise NotFound("No such upload.", field="uploadId")
    upload = await uploads.finish(rt, upload)
    token = _token_of(upload)
    stored = 0
    async with rt.storage.local_copy(upload.storage_key) as original:
        for variant, size in VARIANTS[purpose].items():
            async with temporary_file(".jpg") as resized:
                await asyncio.to_thread(media_probe.resize_cover, original, resized, size)
                stored += (await asyncio.to_thread(resized.stat)).st_size
                await rt.storage.put_file(
                    variant_key(token, variant), resized, content_type="image/jpeg"
                )
    await rt.storage.delete(upload.storage_key)
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(Attachment)
            .where(Attachment.id == upload.id)
            .values(expires_at=None, size_bytes=stored, content_type="image/jpeg")
        )
    first = next(iter(VARIANTS[purpose]))
    return f"{rt.settings.public_url}/media/pictures/{token}/{first}.jpg"


def _column(purpose: UploadPurpose) -> str:
    if purpose not in COLUMNS:
        raise BadUserInput("A picture is an AVATAR or a COVER.", field="purpose")
    return COLUMNS[purpose]


async def set_for_user(
    rt: Runtime, *, viewer_id: int, purpose: UploadPurpose, upload_id: int | None
) -> User:
    """My avatar or cover from an upload of mine (None: removed); the old one is deleted."""
    column = _column(purpose)
    async with rt.db.reader() as session:
        old = await session.scalar(select(getattr(User, column)).where(User.id == viewer_id))
    url = (
        None
        if upload_id is None
        else await _resized(rt, owner_id=viewer_id, upload_id=upload_id, purpose=purpose)
    )
    try:
        user = await profiles.update(
            rt, viewer_id=viewer_id, changes=profiles.ProfileChanges(), pictures={column: url}
        )
    except BaseException:
        await discard(rt, url)
        raise
    if old != url:
        await discard(rt, old)
    return user


async def set_for_group(
    rt: Runtime,
    *,
    viewer_id: int,
    conversation_id: int,
    purpose: UploadPurpose,
    upload_id: int | None,
) -> Conversation:
    """A group's avatar or cover (its owner and admins), from an upload of the one setting it
    (None: removed); the old one is deleted."""
    column = _column(purpose)
    async with rt.db.reader() as session:
        old = await session.scalar(
            select(getattr(Conversation, column)).where(Conversation.id == conversation_id)
        )
    url = (
        None
        if upload_id is None
        else await _resized(rt, owner_id=viewer_id, upload_id=upload_id, purpose=purpose)
    )
    try:
        group = await groups.update(
            rt,
            viewer_id=viewer_id,
            conversation_id=conversation_id,
            details=groups.GroupDetails(),
            pictures={column: url},
        )
    except BaseException:
        await discard(rt, url)
        raise
    if old != url:
        await discard(rt, old)
    return group


def check_variant(purpose: UploadPurpose, variant: str) -> str:
    if variant not in VARIANTS[purpose]:
        sizes = ", ".join(VARIANTS[purpose])
        raise BadUserInput(f"Pictures come in these sizes: {sizes}.", field="size")
    return variant


def stored_key(token: str, variant: str) -> str | None:
    """The storage key of a picture file `/media/pictures/<token>/<variant>.jpg` names."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        return None
    if not any(variant in variants for variants in VARIANTS.values()):
        return None
    return variant_key(token, variant)
