"""Accounts and sign-in: registering, logging in, tokens, sessions, email verification,
password reset, the authenticator-app second factor and guest sessions."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import AuthSession
from chatr.resolvers import auth as resolvers
from chatr.resolvers.auth import RevokedSession
from chatr.schema.info import ChatrInfo
from chatr.schema.node import Node, thin_view
from chatr.schema.profiles import GenderEnum, UserType
from chatr.services.auth import IssuedTokens
from chatr.services.profiles import ProfileChanges


@strawberry.input(description="A new account.")
class RegisterInput:
    username: str = strawberry.field(description="3-20 letters, digits or _; case-insensitive.")
    password: str = strawberry.field(
        description="At least 8 characters, an upper-case letter and a symbol."
    )
    email: str | None = None
    phone: str | None = strawberry.field(
        default=None,
        description="International format, e.g. +15551234567; a code is texted to verify it.",
    )
    display_name: str | None = None
    first_name: str | None = strawberry.field(default=None, description="At most 80 characters.")
    last_name: str | None = strawberry.field(default=None, description="At most 80 characters.")
    gender: GenderEnum | None = None


@strawberry.input
class LoginInput:
    login: str = strawberry.field(description="Username or email address.")
    password: str


@strawberry.input(description="A support-widget visitor starting a chat.")
class GuestSessionInput:
    name: str = strawberry.field(description="How support staff will address the visitor.")
    email: str | None = strawberry.field(default=None, description="For an offline reply.")
    page_context: str | None = strawberry.field(
        default=None, description="Where on the site the chat started (at most 500 characters)."
    )


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
class SessionType(Node):
    is_type_of = thin_view

    @strawberry.field
    def id(self, root: Parent[AuthSession]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.SESSION, root.id))

    device_label: str | None = strawberry.field(description="The User-Agent that signed in.")
    created_at: datetime
    last_used_at: datetime = strawberry.field(description="Last token refresh.")

    @strawberry.field(description="True for the session making this request.")
    async def current(self, root: Parent[AuthSession], info: ChatrInfo) -> bool:
        viewer = await info.context.viewer()
        return root.id == viewer.session_id


@strawberry.type(description="What `revokeSession` answers.")
class RevokeSessionPayload:
    @strawberry.field(description="The session signed out (its id, as in `mySessions`).")
    def revoked_session_id(self, root: Parent[RevokedSession]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.SESSION, root.revoked_session_id))

    @strawberry.field(description="My sessions left afterwards, as `mySessions` lists them.")
    def sessions(self, root: Parent[RevokedSession]) -> list[SessionType]:
        return root.sessions  # type: ignore[return-value]


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


def _auth_payload(tokens: IssuedTokens) -> AuthPayload:
    return AuthPayload(
        access_token=tokens.access_token,
        access_token_expires_at=tokens.access_token_expires_at,
        refresh_token=tokens.refresh_token,
        user=tokens.user,  # type: ignore[arg-type]
    )


@strawberry.type
class AuthQuery:
    @strawberry.field(description="The signed-in user, or null when not signed in.")
    async def me(self, info: ChatrInfo) -> UserType | None:
        return await resolvers.me(info.context)  # type: ignore[return-value]

    @strawberry.field(description="My signed-in devices, most recently used first.")
    async def my_sessions(self, info: ChatrInfo) -> list[SessionType]:
        return await resolvers.my_sessions(info.context)  # type: ignore[return-value]

    @strawberry.field(
        description="Whether a username is free (case-insensitive); if not, 3 suggestions."
    )
    async def username_available(self, info: ChatrInfo, username: str) -> UsernameAvailability:
        return await resolvers.username_available(info.context, username=username)  # type: ignore[return-value]


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Create an account and sign in.")
    async def register(self, info: ChatrInfo, input: RegisterInput) -> AuthPayload:
        return _auth_payload(
            await resolvers.register(
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
            await resolvers.login(info.context, login=input.login, password=input.password)
        )

    @strawberry.mutation(description="Swap a refresh token for new tokens (rotating).")
    async def refresh_token(self, info: ChatrInfo, refresh_token: str) -> AuthPayload:
        return _auth_payload(
            await resolvers.refresh_token(info.context, refresh_token=refresh_token)
        )

    @strawberry.mutation(description="End this session; its tokens stop working at once.")
    async def logout(self, info: ChatrInfo) -> bool:
        return await resolvers.logout(info.context)

    @strawberry.mutation(
        description="Sign one of my devices out (see `mySessions`); answers its id and the "
        "sessions I have left."
    )
    async def revoke_session(self, info: ChatrInfo, id: strawberry.ID) -> RevokeSessionPayload:
        return await resolvers.revoke_session(info.context, session_id=id)  # type: ignore[return-value]

    @strawberry.mutation(description="Sign out every device but this one; returns how many.")
    async def revoke_other_sessions(self, info: ChatrInfo) -> int:
        return await resolvers.revoke_other_sessions(info.context)

    @strawberry.mutation(
        description="Confirm my email address with the code mailed to it; answers me, verified."
    )
    async def verify_email(self, info: ChatrInfo, code: str) -> UserType:
        return await resolvers.verify_email(info.context, code=code)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Mail a new verification code (the old one stops working). False when "
        "the address is already verified."
    )
    async def resend_email_verification(self, info: ChatrInfo) -> bool:
        return await resolvers.resend_email_verification(info.context)

    @strawberry.mutation(
        description="Mail a password reset code. Always true, whether or not the address has "
        "an account."
    )
    async def request_password_reset(self, info: ChatrInfo, email: str) -> bool:
        return await resolvers.request_password_reset(info.context, email=email)

    @strawberry.mutation(
        description="Set a new password with the mailed code; signs out every device."
    )
    async def reset_password(
        self, info: ChatrInfo, email: str, code: str, new_password: str
    ) -> bool:
        return await resolvers.reset_password(
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
            await resolvers.verify_two_factor_login(info.context, challenge=challenge, code=code)
        )

    @strawberry.mutation(
        description="Start turning on two-factor sign-in: scan the QR code (or type the "
        "secret) into an authenticator app, then call confirmTotp with a code from it."
    )
    async def enroll_totp(self, info: ChatrInfo) -> TotpEnrolment:
        return await resolvers.enroll_totp(info.context)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Turn two-factor sign-in on with a code from the app; answers me as stored "
        "afterwards."
    )
    async def confirm_totp(self, info: ChatrInfo, code: str) -> UserType:
        return await resolvers.confirm_totp(info.context, code=code)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Turn two-factor sign-in off; needs a current code. Answers me as stored "
        "afterwards."
    )
    async def disable_totp(self, info: ChatrInfo, code: str) -> UserType:
        return await resolvers.disable_totp(info.context, code=code)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Support widget: sign a visitor in as a guest for 24 hours. Guests can only "
        "talk to support staff."
    )
    async def start_guest_session(self, info: ChatrInfo, input: GuestSessionInput) -> AuthPayload:
        return _auth_payload(
            await resolvers.start_guest_session(
                info.context, name=input.name, email=input.email, page_context=input.page_context
            )
        )
