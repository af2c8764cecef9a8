"""Profiles and privacy: people as the viewer may see them, looking them up, editing my
profile and privacy settings.

Each type declares only what is public; resolvers return model rows, so a column that is not
declared here (a password hash, a TOTP secret) cannot leak by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry import UNSET, Parent
from strawberry.utils.str_converters import to_camel_case

from chatr import global_ids
from chatr.errors import BadUserInput
from chatr.global_ids import Kind
from chatr.models import UploadPurpose, User
from chatr.resolvers import profiles as resolvers
from chatr.resolvers.media import picture_variant
from chatr.schema.info import ChatrInfo
from chatr.schema.node import Node, thin_view
from chatr.schema.scalars import PresenceStatusEnum, TwoFactorMethodEnum
from chatr.services import privacy, profiles
from chatr.services.privacy import Audience, Detail
from chatr.services.two_factor_codes import TwoFactorMethod

T = TypeVar("T")

strawberry.enum(profiles.Gender, name="Gender")
GenderEnum = profiles.Gender
strawberry.enum(
    Audience, name="Audience", description="Who may see a detail: EVERYONE, FRIENDS or NOBODY."
)
AudienceEnum = Audience


@strawberry.type(name="PrivacySettings", description="Who may see each of my details.")
class PrivacySettingsType:
    online_status: AudienceEnum
    last_seen: AudienceEnum
    phone: AudienceEnum
    email: AudienceEnum
    full_name: AudienceEnum = strawberry.field(description="First and last name.")
    gender: AudienceEnum
    joined_date: AudienceEnum
    read_receipts: AudienceEnum = strawberry.field(
        description="Whether others see how far I have read (`lastReadSeq`)."
    )

    @classmethod
    def of(cls, user: User) -> PrivacySettingsType:
        settings = privacy.settings_of(user)
        return cls(**{detail.name.lower(): audience for detail, audience in settings.items()})


AVATAR, COVER = UploadPurpose.AVATAR, UploadPurpose.COVER


@strawberry.type(
    name="User",
    description="A person (or bot) as the viewer may see them. Details each person controls "
    "(see `PrivacySettings`) are null when the viewer may not see them, and always when either "
    "of the two blocked the other.",
)
class UserType(Node):
    is_type_of = thin_view

    @strawberry.field
    def id(self, root: Parent[User]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.USER, root.id))

    username: str
    display_name: str

    @strawberry.field(
        description="Null when either of us blocked the other. An uploaded avatar comes in "
        "`size` 400, 320 or 96 (px squares); an external URL is as it was given."
    )
    async def avatar_url(self, root: Parent[User], info: ChatrInfo, size: int = 400) -> str | None:
        blocked = await resolvers.is_blocked_either_way(info.context, root)
        return None if blocked else picture_variant(root.avatar_url, AVATAR, f"{size}")

    @strawberry.field(
        description="Null when either of us blocked the other. An uploaded cover comes in "
        "`width` 1200 (1200x600) or 600 (600x300); an external URL is as it was given."
    )
    async def cover_url(self, root: Parent[User], info: ChatrInfo, width: int = 1200) -> str | None:
        blocked = await resolvers.is_blocked_either_way(info.context, root)
        return None if blocked else picture_variant(root.cover_url, COVER, f"{width}x{width // 2}")

    @strawberry.field(
        description="True when I blocked them or they blocked me: all I see is that we are blocked."
    )
    async def blocked(self, root: Parent[User], info: ChatrInfo) -> bool:
        return await resolvers.is_blocked_either_way(info.context, root)

    @strawberry.field(description="Privacy: full name.")
    async def first_name(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await visible(info, root, Detail.FULL_NAME, root.first_name)

    @strawberry.field(description="Privacy: full name.")
    async def last_name(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await visible(info, root, Detail.FULL_NAME, root.last_name)

    @strawberry.field(description="Privacy: gender.")
    async def gender(self, root: Parent[User], info: ChatrInfo) -> GenderEnum | None:
        value = profiles.Gender(root.gender) if root.gender else None
        return await visible(info, root, Detail.GENDER, value)

    @strawberry.field(description="Privacy: email.")
    async def email(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await visible(info, root, Detail.EMAIL, root.email)

    @strawberry.field(description="Privacy: phone.")
    async def phone(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await visible(info, root, Detail.PHONE, root.phone)

    @strawberry.field(description="When the account was created. Privacy: joined date.")
    async def created_at(self, root: Parent[User], info: ChatrInfo) -> datetime | None:
        return await visible(info, root, Detail.JOINED_DATE, root.created_at)

    @strawberry.field(description="Online, away or offline. Privacy: online status.")
    async def presence(self, root: Parent[User], info: ChatrInfo) -> PresenceStatusEnum | None:
        if not await resolvers.may_see(info.context, root, Detail.ONLINE_STATUS):
            return None
        return await info.context.loaders.presence.load(root.id)

    @strawberry.field(
        description="When their last connection closed (null if never). Privacy: last seen."
    )
    async def last_seen_at(self, root: Parent[User], info: ChatrInfo) -> datetime | None:
        return await visible(info, root, Detail.LAST_SEEN, root.last_seen_at)

    @strawberry.field(description="My privacy settings; null for anyone else.")
    async def privacy_settings(
        self, root: Parent[User], info: ChatrInfo
    ) -> PrivacySettingsType | None:
        if not await info.context.viewer_is(root.id):
            return None
        return PrivacySettingsType.of(root)

    @strawberry.field(description="Whether the email address is confirmed; only for yourself.")
    async def email_verified(self, root: Parent[User], info: ChatrInfo) -> bool | None:
        if not await info.context.viewer_is(root.id):
            return None
        return root.email_verified_at is not None

    @strawberry.field(description="Whether sign-in needs a second step; only for yourself.")
    async def two_factor_enabled(self, root: Parent[User], info: ChatrInfo) -> bool | None:
        if not await info.context.viewer_is(root.id):
            return None
        return root.two_factor_method is not None

    @strawberry.field(description="Whether the phone number is confirmed; only for yourself.")
    async def phone_verified(self, root: Parent[User], info: ChatrInfo) -> bool | None:
        if not await info.context.viewer_is(root.id):
            return None
        return root.phone_verified_at is not None

    @strawberry.field(description="The second sign-in step, null when off; only for yourself.")
    async def two_factor_method(
        self, root: Parent[User], info: ChatrInfo
    ) -> TwoFactorMethodEnum | None:
        if root.two_factor_method is None or not await info.context.viewer_is(root.id):
            return None
        return TwoFactorMethod(root.two_factor_method)


async def visible(info: ChatrInfo, user: User, detail: Detail, value: T) -> T | None:
    """`value` if the viewer may see `detail` of `user`, else None: the one privacy filter of
    every type that shows someone's details."""
    if value is None:
        return None
    return value if await resolvers.may_see(info.context, user, detail) else None


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
