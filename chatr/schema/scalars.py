"""Enums exposed to GraphQL that several domains share, taken from the models (and the
presence store) so the two can never disagree.

`strawberry.enum(Model, ...)` registers the model's enum in place and returns that same class,
so each `XEnum` name is a plain alias of it: a type checker accepts it in annotations, which
it would not for the result of a call.
"""

from __future__ import annotations

import strawberry

from chatr.infra.presence_store import Status
from chatr.models import (
    ConversationKind,
    ConversationStatus,
    MemberRole,
    MembershipState,
    MessageKind,
)
from chatr.pubsub.envelopes import TypingActivity
from chatr.services.two_factor_codes import CodeMethod, TwoFactorMethod

strawberry.enum(
    ConversationKind, name="ConversationKind", description="DIRECT (two people) or GROUP."
)
ConversationKindEnum = ConversationKind
strawberry.enum(
    ConversationStatus,
    name="ConversationStatus",
    description="ACTIVE, or PENDING while a message request awaits the recipient's answer.",
)
ConversationStatusEnum = ConversationStatus
strawberry.enum(MessageKind, name="MessageKind", description="What a message holds.")
MessageKindEnum = MessageKind
strawberry.enum(
    TwoFactorMethod,
    name="TwoFactorMethod",
    description="The second sign-in step: TOTP (authenticator app), or a code by SMS or EMAIL.",
)
TwoFactorMethodEnum = TwoFactorMethod
strawberry.enum(
    CodeMethod,
    name="TwoFactorCodeMethod",
    description="Where sign-in codes are sent: SMS (verified phone) or EMAIL (verified address).",
)
TwoFactorCodeMethodEnum = CodeMethod
strawberry.enum(
    MemberRole,
    name="MemberRole",
    description="In a group: OWNER (exactly one), ADMIN or MEMBER. Both people in a DM are MEMBER.",
)
MemberRoleEnum = MemberRole
strawberry.enum(
    MembershipState,
    name="MembershipState",
    description="PENDING while invited (no access to history yet), ACCEPTED once joined.",
)
MembershipStateEnum = MembershipState
strawberry.enum(
    Status,
    name="PresenceStatus",
    description="ONLINE while any of their connections is active, AWAY when every one is away, "
    "OFFLINE when none is open on any server.",
)
PresenceStatusEnum = Status
strawberry.enum(
    TypingActivity,
    name="TypingActivity",
    description="What someone busy in a conversation is doing: TYPING or RECORDING_VOICE.",
)
TypingActivityEnum = TypingActivity
