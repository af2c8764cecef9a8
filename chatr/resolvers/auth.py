"""Registration, login, token refresh, logout, me."""

from __future__ import annotations

from chatr.context import Context
from chatr.models import User
from chatr.services import auth, users
from chatr.services.auth import IssuedTokens


def _device_label(ctx: Context) -> str | None:
    return ctx.request.headers.get("user-agent")


async def register(
    ctx: Context, *, username: str, password: str, email: str | None, display_name: str | None
) -> IssuedTokens:
    user = await users.create(
        ctx.runtime, username=username, password=password, email=email, display_name=display_name
    )
    return await auth.start_session(ctx.runtime, user=user, device_label=_device_label(ctx))


async def login(ctx: Context, *, login: str, password: str) -> IssuedTokens:
    return await auth.login(
        ctx.runtime, login=login, password=password, device_label=_device_label(ctx)
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
