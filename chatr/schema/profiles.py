"""Profiles and privacy: looking people up, editing my profile and privacy settings."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.utils.str_converters import to_camel_case

from chatr.errors import BadUserInput
from chatr.resolvers import profiles as resolvers
from chatr.schema.types import (
    AudienceEnum,
    ChatrInfo,
    GenderEnum,
    PrivacySettingsType,
    UserType,
)
from chatr.services import profiles
from chatr.services.privacy import Audience, Detail


@strawberry.input(
    description="Profile changes: leave a field out to keep it, set it to null to clear it."
)
class UpdateProfileInput:
    display_name: str | None = strawberry.field(default=UNSET, description="1-80 characters.")
    first_name: str | None = strawberry.field(default=UNSET, description="At most 80 characters.")
    last_name: str | None = strawberry.field(default=UNSET, description="At most 80 characters.")
    gender: GenderEnum | None = UNSET
    avatar_url: str | None = strawberry.field(default=UNSET, description="An http(s) URL.")
    cover_url: str | None = strawberry.field(default=UNSET, description="An http(s) URL.")


@strawberry.input(description="Privacy changes: leave a setting out to keep it.")
class PrivacySettingsInput:
    online_status: AudienceEnum | None = UNSET
    last_seen: AudienceEnum | None = UNSET
    phone: AudienceEnum | None = UNSET
    email: AudienceEnum | None = UNSET
    full_name: AudienceEnum | None = UNSET
    gender: AudienceEnum | None = UNSET
    joined_date: AudienceEnum | None = UNSET
    read_receipts: AudienceEnum | None = UNSET


def _keep_unset(value: Any) -> Any:
    return profiles.KEEP if value is UNSET else value


def _profile_changes(data: UpdateProfileInput) -> profiles.ProfileChanges:
    return profiles.ProfileChanges(
        display_name=_keep_unset(data.display_name),
        first_name=_keep_unset(data.first_name),
        last_name=_keep_unset(data.last_name),
        gender=_keep_unset(data.gender),
        avatar_url=_keep_unset(data.avatar_url),
        cover_url=_keep_unset(data.cover_url),
    )


def _privacy_changes(data: PrivacySettingsInput) -> dict[Detail, Audience]:
    changes: dict[Detail, Audience] = {}
    for detail in Detail:
        value = getattr(data, detail.name.lower())
        if value is UNSET:
            continue
        if value is None:
            raise BadUserInput(
                "A privacy setting cannot be null; leave it out to keep it.",
                field=to_camel_case(detail.name.lower()),
            )
        changes[detail] = Audience(value)
    return changes


@strawberry.type
class ProfileQuery:
    @strawberry.field(
        description="Someone's profile; the details they keep private are null. NOT_FOUND if "
        "there is no such (active) account."
    )
    async def user(self, info: ChatrInfo, id: strawberry.ID) -> UserType:
        return await resolvers.user(info.context, user_id=id)  # type: ignore[return-value]

    @strawberry.field(description="Someone's profile by username (case-insensitive).")
    async def user_by_username(self, info: ChatrInfo, username: str) -> UserType:
        return await resolvers.user_by_username(info.context, username=username)  # type: ignore[return-value]


@strawberry.type
class ProfileMutation:
    @strawberry.mutation(description="Change my profile; returns it as I see it.")
    async def update_profile(self, info: ChatrInfo, input: UpdateProfileInput) -> UserType:
        return await resolvers.update_profile(  # type: ignore[return-value]
            info.context, changes=_profile_changes(input)
        )

    @strawberry.mutation(description="Change who may see my details.")
    async def update_privacy_settings(
        self, info: ChatrInfo, input: PrivacySettingsInput
    ) -> PrivacySettingsType:
        user = await resolvers.update_privacy(info.context, changes=_privacy_changes(input))
        return PrivacySettingsType.of(user)
