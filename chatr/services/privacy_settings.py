"""Changing one's privacy settings (chatr.services.privacy holds the rules they feed)."""

from __future__ import annotations

from collections.abc import Mapping

from chatr.errors import NotFound
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import privacy, profile_events
from chatr.services.privacy import Audience, Detail


async def update_settings(
    rt: Runtime, *, viewer_id: int, changes: Mapping[Detail, Audience]
) -> User:
    """Change some settings, leaving the others as they were; whoever now sees more or less
    of the person hears of it (chatr.services.profile_events)."""
    async with rt.db.session() as session, session.begin():
        user = await session.get(User, viewer_id, with_for_update=True)
        if user is None:
            raise NotFound("No such user.")
        before = dict(user.privacy or {})
        merged = dict(before)
        merged.update({detail.value: audience.value for detail, audience in changes.items()})
        user.privacy = merged  # a new dict: the JSON column is saved on assignment
        changed = [d for d in changes if privacy.settings_of(user)[d] != _settings(before)[d]]
        notices = await profile_events.log_privacy_change(session, user, before, changed)
    await profile_events.announce(rt, notices)
    return user


def _settings(stored: Mapping[str, str]) -> dict[Detail, Audience]:
    return privacy.settings_of(User(privacy=dict(stored)))
