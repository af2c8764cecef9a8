"""Editing one's own profile: names, gender, avatar and cover pictures."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from chatr.errors import BadUserInput, NotFound
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import profile_events, validation
from chatr.services.conversations import STAFF_ROLES

MAX_NAME = 80
MAX_URL = 1024


class Gender(enum.StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"
    NON_BINARY = "NON_BINARY"
    PREFER_NOT_TO_SAY = "PREFER_NOT_TO_SAY"


class Keep(enum.Enum):
    """A one-member enum rather than a bare `object()`, so that `value is not KEEP` narrows
    a field's type to the value (or None) for the type checker."""

    KEEP = "KEEP"


#: "Leave this as it is", as opposed to None, which clears the field.
KEEP: Final = Keep.KEEP


@dataclass(frozen=True)
class ProfileChanges:
    """Each field is KEEP (unchanged), None (cleared) or the new value."""

    display_name: str | Keep = KEEP
    first_name: str | Keep | None = KEEP
    last_name: str | Keep | None = KEEP
    gender: Gender | Keep | None = KEEP
    avatar_url: str | Keep | None = KEEP
    cover_url: str | Keep | None = KEEP


def _name(value: str | None, field: str) -> str | None:
    value = validation.text(value or "", field=field).strip()
    if len(value) > MAX_NAME:
        raise BadUserInput(f"{field} is at most {MAX_NAME} characters.", field=field)
    return value or None


def _picture_url(value: str | None, field: str) -> str | None:
    """An absolute http(s) URL or nothing: anything else would be rendered by every client."""
    value = validation.text(value or "", field=field).strip()
    if not value:
        return None
    parts = urlsplit(value)
    if len(value) > MAX_URL or parts.scheme not in ("https", "http") or not parts.netloc:
        raise BadUserInput(
            f"{field} must be an http(s) URL of at most {MAX_URL} characters.", field=field
        )
    return value


def validated(changes: ProfileChanges) -> dict[str, object]:
    """Column values for the changes; BAD_USER_INPUT (naming the field) if one is invalid."""
    values: dict[str, object] = {}
    if changes.display_name is not KEEP:
        if not isinstance(changes.display_name, str) or not changes.display_name.strip():
            raise BadUserInput("Display name must not be empty.", field="displayName")
        values["display_name"] = validation.display_name(changes.display_name, "")
    if changes.first_name is not KEEP:
        values["first_name"] = _name(changes.first_name, "firstName")
    if changes.last_name is not KEEP:
        values["last_name"] = _name(changes.last_name, "lastName")
    if changes.gender is not KEEP:
        values["gender"] = None if changes.gender is None else Gender(changes.gender).value
    if changes.avatar_url is not KEEP:
        values["avatar_url"] = _picture_url(changes.avatar_url, "avatarUrl")
    if changes.cover_url is not KEEP:
        values["cover_url"] = _picture_url(changes.cover_url, "coverUrl")
    return values


async def update(
    rt: Runtime,
    *,
    viewer_id: int,
    changes: ProfileChanges,
    pictures: dict[str, str | None] | None = None,
) -> User:
    """Apply the changes all or nothing: one invalid field changes nothing. `pictures`:
    `avatar_url`/`cover_url` values chatr made itself (chatr.services.pictures), as they are."""
    values = validated(changes)
    values.update(pictures or {})
    async with rt.db.session() as session, session.begin():
        user = await session.get(User, viewer_id, with_for_update=True)
        if user is None:
            raise NotFound("No such user.")
        if "display_name" in values and user.role not in STAFF_ROLES:
            validation.not_reserved(str(values["display_name"]))
        changed = [name for name, value in values.items() if getattr(user, name) != value]
        for name, value in values.items():
            setattr(user, name, value)
        notices = await profile_events.log_profile_change(session, user, changed)
    await profile_events.announce(rt, notices)
    return user
