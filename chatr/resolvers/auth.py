"""Registration, login, token refresh, logout, me."""

from __future__ import annotations

from dataclasses import dataclass

from chatr import global_ids
from chatr.client_address import client_ip
from chatr.context import Context
from chatr.global_ids import Kind
from chatr.models import AuthSession, User
from chatr.services import (
    auth,
    email_verification,
    guests,
    password_reset,
    two_factor,
    users,
)
from chatr.services.auth import IssuedTokens
from chatr.services.profiles import ProfileChanges


def _device_label(ctx: Context) -> str | None:
    return ctx.request.headers.get("user-agent")


async def register(
    ctx: Context,
    *,
    username: str,
    password: str,
    email: str | None,
    display_name: str | None,
    phone: str | None = None,
    profile: ProfileChanges | None = None,
) -> IssuedTokens:
    user = await users.create(
        ctx.runtime,
        username=username,
        password=password,
        email=email,
        phone=phone,
        display_name=display_name,
        profile=profile,
        client_ip=client_ip(ctx.request),
    )
    return await auth.start_session(ctx.runtime, user=user, device_label=_device_label(ctx))


async def login(ctx: Context, *, login: str, password: str) -> IssuedTokens:
    return await auth.login(
        ctx.runtime,
        login=login,
        password=password,
        client_ip=client_ip(ctx.request),
        device_label=_device_label(ctx),
    )


async def refresh_token(ctx: Context, *, refresh_token: str) -> IssuedTokens:
    return await auth.refresh(ctx.runtime, refresh_token=refresh_token)


async def logout(ctx: Context) -> bool:
    return await auth.logout(ctx.runtime, viewer=await ctx.viewer())


async def me(ctx: Context) -> User | None:
    viewer = await ctx.optional_viewer()
    if viewer is None:
        return None
    return await ctx.loaders.user_by_id.load(viewer.id)


async def me_now(ctx: Context) -> User:
    """Me as stored now: a fresh read for a mutation to answer with what it changed (the
    request's loader may hold me as I was before)."""
    viewer = await ctx.viewer()
    return await users.profile(ctx.runtime, user_id=viewer.id)


async def my_sessions(ctx: Context) -> list[AuthSession]:
    return await auth.list_sessions(ctx.runtime, viewer=await ctx.viewer())


@dataclass(frozen=True)
class RevokedSession:
    """What `revokeSession` answers: the session signed out and the ones I still have."""

    revoked_session_id: int
    sessions: list[AuthSession]


async def revoke_session(ctx: Context, *, session_id: str) -> RevokedSession:
    viewer = await ctx.viewer()
    pk = global_ids.decode(session_id, Kind.SESSION, field="id")
    await auth.revoke_own_session(ctx.runtime, viewer=viewer, session_id=pk)
    return RevokedSession(pk, await auth.list_sessions(ctx.runtime, viewer=viewer))


async def revoke_other_sessions(ctx: Context) -> int:
    return await auth.revoke_other_sessions(ctx.runtime, viewer=await ctx.viewer())


async def username_available(ctx: Context, *, username: str) -> users.UsernameAvailability:
    return await users.username_availability(ctx.runtime, username=username)


async def verify_email(ctx: Context, *, code: str) -> User:
    await email_verification.verify(ctx.runtime, viewer_id=(await ctx.viewer()).id, code=code)
    return await me_now(ctx)


async def resend_email_verification(ctx: Context) -> bool:
    viewer = await ctx.viewer()
    return await email_verification.resend(
        ctx.runtime, viewer_id=viewer.id, client_ip=client_ip(ctx.request)
    )


async def request_password_reset(ctx: Context, *, email: str) -> bool:
    return await password_reset.request(ctx.runtime, email=email, client_ip=client_ip(ctx.request))


async def reset_password(ctx: Context, *, email: str, code: str, new_password: str) -> bool:
    return await password_reset.reset(
        ctx.runtime, email=email, code=code, new_password=new_password
    )


async def verify_two_factor_login(ctx: Context, *, challenge: str, code: str) -> IssuedTokens:
    return await auth.complete_two_factor_login(
        ctx.runtime, challenge=challenge, code=code, device_label=_device_label(ctx)
    )


async def enroll_totp(ctx: Context) -> two_factor.TotpEnrolment:
    return await two_factor.enroll(ctx.runtime, viewer_id=(await ctx.viewer()).id)


async def confirm_totp(ctx: Context, *, code: str) -> User:
    await two_factor.confirm(ctx.runtime, viewer_id=(await ctx.viewer()).id, code=code)
    return await me_now(ctx)


async def disable_totp(ctx: Context, *, code: str) -> User:
    await two_factor.disable(ctx.runtime, viewer_id=(await ctx.viewer()).id, code=code)
    return await me_now(ctx)


async def start_guest_session(
    ctx: Context, *, name: str, email: str | None, page_context: str | None
) -> IssuedTokens:
    return await guests.start(
        ctx.runtime,
        name=name,
        email=email,
        page_context=page_context,
        client_ip=client_ip(ctx.request),
        device_label=_device_label(ctx),
    )
