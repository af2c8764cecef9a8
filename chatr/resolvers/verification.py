"""Phone verification and the SMS/email second factor: read the viewer, call the service."""

from __future__ import annotations

from chatr.client_address import client_ip
from chatr.context import Context
from chatr.models import User
from chatr.resolvers.auth import me_now
from chatr.services import phone_verification, two_factor_codes


async def verify_phone(ctx: Context, *, code: str) -> User:
    viewer = await ctx.viewer()
    await phone_verification.verify(ctx.runtime, viewer_id=viewer.id, code=code)
    return await me_now(ctx)


async def resend_phone_verification(ctx: Context) -> bool:
    viewer = await ctx.viewer()
    return await phone_verification.resend(
        ctx.runtime, viewer_id=viewer.id, client_ip=client_ip(ctx.request)
    )


async def set_phone_number(ctx: Context, *, phone: str) -> User:
    viewer = await ctx.viewer()
    await phone_verification.set_number(
        ctx.runtime, viewer_id=viewer.id, phone=phone, client_ip=client_ip(ctx.request)
    )
    return await me_now(ctx)


async def set_two_factor_method(ctx: Context, *, method: str, code: str | None) -> User:
    viewer = await ctx.viewer()
    await two_factor_codes.set_method(ctx.runtime, viewer_id=viewer.id, method=method, code=code)
    return await me_now(ctx)


async def request_two_factor_code(ctx: Context) -> bool:
    viewer = await ctx.viewer()
    return await two_factor_codes.request_change_code(
        ctx.runtime, viewer_id=viewer.id, client_ip=client_ip(ctx.request)
    )


async def disable_two_factor_codes(ctx: Context, *, code: str) -> User:
    viewer = await ctx.viewer()
    await two_factor_codes.disable(ctx.runtime, viewer_id=viewer.id, code=code)
    return await me_now(ctx)


async def resend_two_factor_login_code(ctx: Context, *, challenge: str) -> bool:
    return await two_factor_codes.resend_login_code(
        ctx.runtime, challenge=challenge, client_ip=client_ip(ctx.request)
    )
