"""Object types: thin views of the models.

Each type declares only what is public; resolvers return model rows, so a column that is not
declared here (a password hash, a TOTP secret) cannot leak by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry
from strawberry import Parent
from strawberry.types import Info

from chatr.context import Context
from chatr.infra.presence_store import Status
from chatr.models import (
    AuthSession,
    Conversation,
    ConversationKind,
    Membership,
    Message,
    MessageKind,
    User,
)
from chatr.resolvers import conversations as conversation_resolvers
from chatr.resolvers import profiles as profile_resolvers
from chatr.schema.pagination import Connection
from chatr.schema.scalars import (
    ConversationKindEnum,
    ConversationStatusEnum,
    MemberRoleEnum,
    MembershipStateEnum,
    MessageKindEnum,
    TwoFactorMethodEnum,
)
from chatr.services import privacy, profiles
from chatr.services.pagination import PageRequest
from chatr.services.privacy import Audience, Detail
from chatr.services.receipts import ReceiptState
from chatr.services.two_factor_codes import TwoFactorMethod

if TYPE_CHECKING:
    from chatr.schema.groups import SystemDetailsType

ChatrInfo = Info[Context, None]
T = TypeVar("T")


strawberry.enum(profiles.Gender, name="Gender")
GenderEnum = profiles.Gender
strawberry.enum(
    Status,
    name="PresenceStatus",
    description="ONLINE while any of their connections is active, AWAY when every one is away, "
    "OFFLINE when none is open on any server.",
)
PresenceStatusEnum = Status
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


@strawberry.type(
    name="User",
    description="A person (or bot) as the viewer may see them. Details each person controls "
    "(see `PrivacySettings`) are null when the viewer may not see them, and always when either "
    "of the two blocked the other.",
)
class UserType:
    id: strawberry.ID
    username: str
    display_name: str

    @strawberry.field(description="Null when either of us blocked the other.")
    async def avatar_url(self, root: Parent[User], info: ChatrInfo) -> str | None:
        blocked = await profile_resolvers.is_blocked_either_way(info.context, root)
        return None if blocked else root.avatar_url

    @strawberry.field(description="Null when either of us blocked the other.")
    async def cover_url(self, root: Parent[User], info: ChatrInfo) -> str | None:
        blocked = await profile_resolvers.is_blocked_either_way(info.context, root)
        return None if blocked else root.cover_url

    @strawberry.field(
        description="True when I blocked them or they blocked me: all I see is that we are blocked."
    )
    async def blocked(self, root: Parent[User], info: ChatrInfo) -> bool:
        return await profile_resolvers.is_blocked_either_way(info.context, root)

    @strawberry.field(description="Privacy: full name.")
    async def first_name(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await _detail(info, root, Detail.FULL_NAME, root.first_name)

    @strawberry.field(description="Privacy: full name.")
    async def last_name(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await _detail(info, root, Detail.FULL_NAME, root.last_name)

    @strawberry.field(description="Privacy: gender.")
    async def gender(self, root: Parent[User], info: ChatrInfo) -> GenderEnum | None:
        value = profiles.Gender(root.gender) if root.gender else None
        return await _detail(info, root, Detail.GENDER, value)

    @strawberry.field(description="Privacy: email.")
    async def email(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await _detail(info, root, Detail.EMAIL, root.email)

    @strawberry.field(description="Privacy: phone.")
    async def phone(self, root: Parent[User], info: ChatrInfo) -> str | None:
        return await _detail(info, root, Detail.PHONE, root.phone)

    @strawberry.field(description="When the account was created. Privacy: joined date.")
    async def created_at(self, root: Parent[User], info: ChatrInfo) -> datetime | None:
        return await _detail(info, root, Detail.JOINED_DATE, root.created_at)

    @strawberry.field(description="Online, away or offline. Privacy: online status.")
    async def presence(self, root: Parent[User], info: ChatrInfo) -> PresenceStatusEnum | None:
        if not await profile_resolvers.may_see(info.context, root, Detail.ONLINE_STATUS):
            return None
        return await info.context.loaders.presence.load(root.id)

    @strawberry.field(
        description="When their last connection closed (null if never). Privacy: last seen."
    )
    async def last_seen_at(self, root: Parent[User], info: ChatrInfo) -> datetime | None:
        return await _detail(info, root, Detail.LAST_SEEN, root.last_seen_at)

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


async def _detail(info: ChatrInfo, user: User, detail: Detail, value: T) -> T | None:
    """`value` if the viewer may see `detail` of `user`, else None."""
    if value is None:
        return None
    return value if await profile_resolvers.may_see(info.context, user, detail) else None


@strawberry.type(name="Message", description="One message in a conversation.")
class MessageType:
    id: strawberry.ID
    seq: int = strawberry.field(
        description="Position in its conversation: 1, 2, 3… without gaps. Order and resume by it."
    )
    kind: MessageKindEnum
    body: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None

    @strawberry.field
    def conversation_id(self, root: Parent[Message]) -> strawberry.ID:
        return strawberry.ID(str(root.conversation_id))

    @strawberry.field(description="The sender's own idempotency key; null for everyone else.")
    async def client_message_id(self, root: Parent[Message], info: ChatrInfo) -> str | None:
        if root.sender_id is None or not await info.context.viewer_is(root.sender_id):
            return None
        return root.client_id

    @strawberry.field(
        description="The conversation this message belongs to. NOT_FOUND unless I am in it "
        "now: a message I keep (one I sent, then left the group) does not lead back in."
    )
    async def conversation(
        self, root: Parent[Message], info: ChatrInfo
    ) -> Annotated[ConversationType, strawberry.lazy("chatr.schema.types")]:
        return await conversation_resolvers.reached(  # type: ignore[return-value]
            info.context, conversation_id=root.conversation_id
        )

    @strawberry.field(description="Who sent it; for a SYSTEM message, who made the change.")
    async def sender(self, root: Parent[Message], info: ChatrInfo) -> UserType | None:
        if root.sender_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.sender_id)  # type: ignore[return-value]

    @strawberry.field(
        description="For SYSTEM messages (kind SYSTEM): what changed in the group, so clients "
        "can write their own text. Null for every other kind."
    )
    def system(
        self, root: Parent[Message]
    ) -> Annotated[SystemDetailsType, strawberry.lazy("chatr.schema.groups")] | None:
        if root.kind != MessageKind.SYSTEM or not root.extra:
            return None
        return root.extra  # type: ignore[return-value]


@strawberry.type(name="Member", description="A participant and how far they have got.")
class MemberType:
    joined_at: datetime = strawberry.field(
        description="When they joined (for a PENDING member: when they were invited)."
    )
    role: MemberRoleEnum
    state: MembershipStateEnum

    @strawberry.field(description="Who invited them (groups), if anyone.")
    async def invited_by(self, root: Parent[Membership], info: ChatrInfo) -> UserType | None:
        if root.invited_by_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.invited_by_id)  # type: ignore[return-value]

    @strawberry.field(
        description="How far their devices have received; null while they have not answered "
        "my message request."
    )
    async def last_delivered_seq(self, root: Parent[Membership], info: ChatrInfo) -> int | None:
        if await conversation_resolvers.markers_hidden(info.context, root):
            return None
        return root.last_delivered_seq

    @strawberry.field(
        description="How far they have read; null when their read-receipt privacy setting "
        "hides it from me, or while they have not answered my message request."
    )
    async def last_read_seq(self, root: Parent[Membership], info: ChatrInfo) -> int | None:
        member = await info.context.loaders.user_by_id.load(root.user_id)
        if member is None or await conversation_resolvers.markers_hidden(info.context, root):
            return None
        return await _detail(info, member, Detail.READ_RECEIPTS, root.last_read_seq)

    @strawberry.field
    async def user(self, root: Parent[Membership], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]


@strawberry.type(name="Conversation", description="A direct conversation or a group.")
class ConversationType:
    id: strawberry.ID
    kind: ConversationKindEnum
    status: ConversationStatusEnum
    name: str | None
    description: str | None = strawberry.field(description="Groups only.")
    avatar_url: str | None = strawberry.field(description="Groups only.")
    cover_url: str | None = strawberry.field(description="Groups only.")
    created_at: datetime
    last_activity_at: datetime
    last_seq: int = strawberry.field(description="Seq of the newest message (0 when empty).")

    @strawberry.field(description="Everyone who has joined (ACCEPTED), oldest membership first.")
    async def members(self, root: Parent[Conversation], info: ChatrInfo) -> list[MemberType]:
        return await info.context.loaders.members_by_conversation.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="Groups: people invited who have not answered yet (PENDING).")
    async def invited_members(
        self, root: Parent[Conversation], info: ChatrInfo
    ) -> list[MemberType]:
        if root.kind != ConversationKind.GROUP:
            return []
        return await info.context.loaders.invitees_by_conversation.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="My role here: OWNER, ADMIN or MEMBER.")
    async def my_role(self, root: Parent[Conversation], info: ChatrInfo) -> MemberRoleEnum | None:
        viewer = await info.context.viewer()
        membership = await info.context.loaders.membership.load((root.id, viewer.id))
        return None if membership is None else membership.role

    @strawberry.field(description="For a direct conversation: the other person.")
    async def peer(self, root: Parent[Conversation], info: ChatrInfo) -> UserType | None:
        if root.kind != ConversationKind.DIRECT:
            return None
        viewer = await info.context.viewer()
        members = await info.context.loaders.members_by_conversation.load(root.id)
        other = next((m.user_id for m in members if m.user_id != viewer.id), None)
        return None if other is None else await info.context.loaders.user_by_id.load(other)  # type: ignore[return-value]

    @strawberry.field
    async def last_message(self, root: Parent[Conversation], info: ChatrInfo) -> MessageType | None:
        if root.last_seq == 0:
            return None
        return await info.context.loaders.message_by_conversation_seq.load((root.id, root.last_seq))  # type: ignore[return-value]

    @strawberry.field(description="Messages after the viewer's read marker.")
    async def unread_count(self, root: Parent[Conversation], info: ChatrInfo) -> int:
        viewer = await info.context.viewer()
        membership = await info.context.loaders.membership.load((root.id, viewer.id))
        return 0 if membership is None else max(0, root.last_seq - membership.last_read_seq)

    @strawberry.field(description="The viewer's own receipts in this conversation.")
    async def my_membership(self, root: Parent[Conversation], info: ChatrInfo) -> MemberType | None:
        viewer = await info.context.viewer()
        return await info.context.loaders.membership.load((root.id, viewer.id))  # type: ignore[return-value]

    @strawberry.field(
        description="History, newest first. `first`/`last` at most 100; keyset cursors."
    )
    async def messages(
        self,
        root: Parent[Conversation],
        info: ChatrInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[MessageType]:
        page = await conversation_resolvers.history(
            info.context,
            conversation_id=root.id,
            page=PageRequest(first=first, after=after, last=last, before=before),
        )
        return Connection.from_page(page)


@strawberry.type(name="Receipt", description="A member's delivered/read markers.")
class ReceiptType:
    last_read_seq: int
    last_delivered_seq: int

    @strawberry.field
    def conversation_id(self, root: Parent[ReceiptState]) -> strawberry.ID:
        return strawberry.ID(str(root.conversation_id))

    @strawberry.field
    async def user(self, root: Parent[ReceiptState], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]


@strawberry.type(description="Tokens for a signed-in session.")
class AuthPayload:
    access_token: str = strawberry.field(description="Short-lived JWT for `Authorization: Bearer`.")
    access_token_expires_at: datetime
    refresh_token: str = strawberry.field(
        description="Single use: `refreshToken` returns a new one. Reusing an old one logs out "
        "every device of this session."
    )
    user: UserType


@strawberry.type(name="Session", description="A signed-in device (one refresh-token family).")
class SessionType:
    id: strawberry.ID
    device_label: str | None = strawberry.field(description="The User-Agent that signed in.")
    created_at: datetime
    last_used_at: datetime = strawberry.field(description="Last token refresh.")

    @strawberry.field(description="True for the session making this request.")
    async def current(self, root: Parent[AuthSession], info: ChatrInfo) -> bool:
        viewer = await info.context.viewer()
        return root.id == viewer.session_id


@strawberry.type(description="Whether a username can be registered, and free alternatives.")
class UsernameAvailability:
    available: bool
    reason: str | None = strawberry.field(description="INVALID or TAKEN when not available.")
    suggestions: list[str] = strawberry.field(description="Up to three free usernames.")


@strawberry.type(description="A new authenticator secret to confirm with confirmTotp.")
class TotpEnrolment:
    secret: str = strawberry.field(description="Base32, for typing into the app by hand.")
    otpauth_uri: str
    qr_code_png: str = strawberry.field(description="The otpauth URI as a PNG data URL.")
