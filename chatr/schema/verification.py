"""Root mutations for phone verification and the second factor by SMS or email code."""

from __future__ import annotations

import strawberry

from chatr.resolvers import verification as resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.profiles import UserType
from chatr.schema.scalars import TwoFactorCodeMethodEnum


@strawberry.type
class VerificationMutation:
    @strawberry.mutation(
        description="Confirm my phone number with the code texted to it; answers me, verified."
    )
    async def verify_phone(self, info: ChatrInfo, code: str) -> UserType:
        return await resolvers.verify_phone(info.context, code=code)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Text a new verification code (the old one stops working). False when the "
        "number is already verified. Rate-limited per address."
    )
    async def resend_phone_verification(self, info: ChatrInfo) -> bool:
        return await resolvers.resend_phone_verification(info.context)

    @strawberry.mutation(
        description="Add or change my phone number (international format, e.g. +15551234567). "
        "It is unverified until I confirm the texted code with verifyPhone; when it is already "
        "my verified number nothing changes and no code is sent. Answers me as stored "
        "afterwards. CONFLICT when another account has it, or while sign-in codes go by SMS "
        "(turn them off first)."
    )
    async def set_phone_number(self, info: ChatrInfo, phone: str) -> UserType:
        return await resolvers.set_phone_number(info.context, phone=phone)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Make sign-in ask for a code sent by SMS (needs a verified phone) or EMAIL "
        "(needs a verified address) after the password. Switching from the other channel "
        "needs `code` from requestTwoFactorCode; CONFLICT while an authenticator app is on. "
        "Answers me as stored afterwards."
    )
    async def set_two_factor_method(
        self,
        info: ChatrInfo,
        method: TwoFactorCodeMethodEnum,
        code: str | None = None,
    ) -> UserType:
        return await resolvers.set_two_factor_method(  # type: ignore[return-value]
            info.context,
            method=method.value,
            code=code,
        )

    @strawberry.mutation(
        description="Send a code through my current SMS/email second factor, to confirm "
        "switching it (setTwoFactorMethod) or turning it off (disableTwoFactorCodes)."
    )
    async def request_two_factor_code(self, info: ChatrInfo) -> bool:
        return await resolvers.request_two_factor_code(info.context)

    @strawberry.mutation(
        description="Turn sign-in codes by SMS or email off; needs the code from "
        "requestTwoFactorCode. Answers me as stored afterwards."
    )
    async def disable_two_factor_codes(self, info: ChatrInfo, code: str) -> UserType:
        return await resolvers.disable_two_factor_codes(info.context, code=code)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Send the sign-in code again for a login that answered TWO_FACTOR_REQUIRED "
        "with method SMS or EMAIL (the earlier code stops working). Rate-limited."
    )
    async def resend_two_factor_login_code(self, info: ChatrInfo, challenge: str) -> bool:
        return await resolvers.resend_two_factor_login_code(info.context, challenge=challenge)
