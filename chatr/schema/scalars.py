"""Enums exposed to GraphQL, taken from the models so the two can never disagree."""

from __future__ import annotations

import strawberry

from chatr.models import (
    ConversationKind,
    ConversationStatus,
    MemberRole,
    MembershipState,
    MessageKind,
)
from chatr.services.two_factor_codes import CodeMethod, TwoFactorMethod

ConversationKindEnum = strawberry.enum(
    ConversationKind, name="ConversationKind", description="DIRECT (two people) or GROUP."
)
ConversationStatusEnum = strawberry.enum(
    ConversationStatus,
    name="ConversationStatus",
    description="ACTIVE, or PENDING while a message request awaits the recipient's answer.",
)
MessageKindEnum = strawberry.enum(
    MessageKind, name="MessageKind", description="What a message holds."
)
TwoFactorMethodEnum = strawberry.enum(
    TwoFactorMethod,
    name="TwoFactorMethod",
    description="The second sign-in step: TOTP (authenticator app), or a code by SMS or EMAIL.",
)
TwoFactorCodeMethodEnum = strawberry.enum(
    CodeMethod,
    name="TwoFactorCodeMethod",
    description="Where sign-in codes are sent: SMS (verified phone) or EMAIL (verified address).",
)
MemberRoleEnum = strawberry.enum(
    MemberRole,
    name="MemberRole",
    description="In a group: OWNER (exactly one), ADMIN or MEMBER. Both people in a DM are MEMBER.",
)
MembershipStateEnum = strawberry.enum(
    MembershipState,
    name="MembershipState",
    description="PENDING while invited (no access to history yet), ACCEPTED once joined.",
)
