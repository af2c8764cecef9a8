"""Root mutation type."""

from __future__ import annotations

import strawberry

from chatr.resolvers import auth, conversations, messages
from chatr.schema.inputs import GuestSessionInput, LoginInput, RegisterInput, SendMessageInput
from chatr.schema.types import AuthPayload, ChatrInfo, MessageType, ReceiptType, TotpEnrolment
from chatr.services.auth import IssuedTokens
from chatr.services.profiles import ProfileChanges


def _auth_payload(tokens: IssuedTokens) -> AuthPayload:
    return AuthPayload(
        access_token=tokens.access_token,
        access_token_expires_at=tokens.access_token_expires_at,
        refresh_token=tokens.refresh_token,
        user=tokens.user,  # type: ignore[arg-type]
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(self, info: ChatrInfo, input: RegisterInput) -> AuthPayload:
        return _auth_payload(
            await auth.register(
                info.context,
                username=input.username,
                password=input.password,
                email=input.email,
                phone=input.phone,
                display_name=input.display_name,
                profile=ProfileChanges(
                    first_name=input.first_name, last_name=input.last_name, gender=input.gender
                ),
            )
        )

    @strawberry.mutation(description="Sign in with username or email and password.")
    async def login(self, info: ChatrInfo, input: LoginInput) -> AuthPayload:
        return _auth_payload(
            await auth.login(info.context, login=input.login, password=input.password)
        )

    @strawberry.mutation(description="Swap a refresh token for new tokens (rotating).")
    async def refresh_token(self, info: ChatrInfo, refresh_token: str) -> AuthPayload:
        return _auth_payload(await auth.refresh_token(info.context, refresh_token=refresh_token))

    @strawberry.mutation(description="End this session; its tokens stop working at once.")
    async def logout(self, info: ChatrInfo) -> bool:
        return await auth.logout(info.context)

    @strawberry.mutation(
        description="Send a message. Retrying it with the same clientMessageId is safe: the "
        "original is returned, after the same permission checks as a new message."
    )
    async def send_message(self, info: ChatrInfo, input: SendMessageInput) -> MessageType:
        return await messages.send_message(  # type: ignore[return-value]
            info.context,
            body=input.body,
            client_message_id=input.client_message_id,
            recipient_id=input.recipient_id,
            conversation_id=input.conversation_id,
        )

    @strawberry.mutation(description="I have read everything up to and including `upToSeq`.")
    async def mark_read(
        self, info: ChatrInfo, conversation_id: strawberry.ID, up_to_seq: int
    ) -> ReceiptType:
        return await conversations.mark_read(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, up_to_seq=up_to_seq
        )

    @strawberry.mutation(description="My device has received everything up to `upToSeq`.")
    async def mark_delivered(
        self, info: ChatrInfo, conversation_id: strawberry.ID, up_to_seq: int
    ) -> ReceiptType:
        return await conversations.mark_delivered(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, up_to_seq=up_to_seq
        )

    @strawberry.mutation(
        description="Typing indicator. Send true every few seconds while typing; it expires "
        "after ~6 s without a refresh."
    )
    async def set_typing(
        self, info: ChatrInfo, conversation_id: strawberry.ID, typing: bool
    ) -> bool:
        return await conversations.set_typing(
            info.context, conversation_id=conversation_id, typing=typing
        )

    @strawberry.mutation(description="Sign one of my devices out (see `mySessions`).")
    async def revoke_session(self, info: ChatrInfo, id: strawberry.ID) -> bool:
        return await auth.revoke_session(info.context, session_id=id)

    @strawberry.mutation(description="Sign out every device but this one; returns how many.")
    async def revoke_other_sessions(self, info: ChatrInfo) -> int:
        return await auth.revoke_other_sessions(info.context)

    @strawberry.mutation(description="Confirm my email address with the code mailed to it.")
    async def verify_email(self, info: ChatrInfo, code: str) -> bool:
        return await auth.verify_email(info.context, code=code)

    @strawberry.mutation(
        description="Mail a new verification code (the old one stops working). False when "
        "the address is already verified."
    )
    async def resend_email_verification(self, info: ChatrInfo) -> bool:
        return await auth.resend_email_verification(info.context)

    @strawberry.mutation(
        description="Mail a password reset code. Always true, whether or not the address has "
        "an account."
    )
    async def request_password_reset(self, info: ChatrInfo, email: str) -> bool:
        return await auth.request_password_reset(info.context, email=email)

    @strawberry.mutation(
        description="Set a new password with the mailed code; signs out every device."
    )
    async def reset_password(
        self, info: ChatrInfo, email: str, code: str, new_password: str
    ) -> bool:
        return await auth.reset_password(
            info.context, email=email, code=code, new_password=new_password
        )

    @strawberry.mutation(
        description="Finish a login that answered TWO_FACTOR_REQUIRED: pass its "
        "`extensions.challenge` and the code its `extensions.method` asks for: the current "
        "authenticator code (TOTP), or the code texted (SMS) or mailed (EMAIL)."
    )
    async def verify_two_factor_login(
        self, info: ChatrInfo, challenge: str, code: str
    ) -> AuthPayload:
        return _auth_payload(
            await auth.verify_two_factor_login(info.context, challenge=challenge, code=code)
        )

    @strawberry.mutation(
        description="Start turning on two-factor sign-in: scan the QR code (or type the "
        "secret) into an authenticator app, then call confirmTotp with a code from it."
    )
    async def enroll_totp(self, info: ChatrInfo) -> TotpEnrolment:
        return await auth.enroll_totp(info.context)  # type: ignore[return-value]

    @strawberry.mutation(description="Turn two-factor sign-in on with a code from the app.")
    async def confirm_totp(self, info: ChatrInfo, code: str) -> bool:
        return await auth.confirm_totp(info.context, code=code)

    @strawberry.mutation(description="Turn two-factor sign-in off; needs a current code.")
    async def disable_totp(self, info: ChatrInfo, code: str) -> bool:
        return await auth.disable_totp(info.context, code=code)

    @strawberry.mutation(
        description="Support widget: sign a visitor in as a guest for 24 hours. Guests can only "
        "talk to support staff."
    )
    async def start_guest_session(self, info: ChatrInfo, input: GuestSessionInput) -> AuthPayload:
        return _auth_payload(
            await auth.start_guest_session(
                info.context, name=input.name, email=input.email, page_context=input.page_context
            )
        )
