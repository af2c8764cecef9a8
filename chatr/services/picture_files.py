"""Where an avatar's or cover's files live, and how they go: the part of
chatr.services.pictures that deletions elsewhere (a group deleted for everyone, an account
deleted) need without depending on the groups and profiles that pictures updates."""

from __future__ import annotations

import re

from sqlalchemy import delete

from chatr.models import Attachment, UploadPurpose
from chatr.runtime import Runtime

#: Variant name -> (width, height). The first of each is what `avatarUrl`/`coverUrl` hold.
VARIANTS: dict[UploadPurpose, dict[str, tuple[int, int]]] = {
    UploadPurpose.AVATAR: {"400": (400, 400), "320": (320, 320), "96": (96, 96)},
    UploadPurpose.COVER: {"1200x600": (1200, 600), "600x300": (600, 300)},
}
_PICTURE_PATH = re.compile(r"/media/pictures/([A-Za-z0-9_-]+)/([0-9x]+)\.jpg$")


def variant_key(token: str, variant: str) -> str:
    return f"pictures/{token}/{variant}.jpg"


def parse_url(url: str | None) -> tuple[str, str] | None:
    """(token, variant) of a picture URL chatr made; None for an external URL (or none)."""
    if not url:
        return None
    found = _PICTURE_PATH.search(url)
    return None if found is None else (found.group(1), found.group(2))


async def discard(rt: Runtime, url: str | None) -> None:
    """Delete a picture chatr made (its files and its upload's record); nothing for others."""
    parsed = parse_url(url)
    if parsed is None:
        return
    token = parsed[0]
    keys = [variant_key(token, variant) for variants in VARIANTS.values() for variant in variants]
    for key in keys:
        await rt.storage.delete(key)
    async with rt.db.session() as session, session.begin():
        await session.execute(
            delete(Attachment).where(Attachment.storage_key.like(f"uploads/%/{token}"))
        )
