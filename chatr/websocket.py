"""WebSocket connection lifecycle: authenticate on connect, close when the token stops being valid.

A WebSocket can outlive its access token by hours; HTTP requests re-check the session on
every call, so the socket must too: it closes with 4401 when the token expires and 4403 when
the session is revoked (logout, refresh-token reuse) or the account suspended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from starlette.websockets import WebSocket, WebSocketState

from chatr.context import Context
from chatr.errors import Unauthenticated
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Message, Resync
from chatr.services import auth, presence
from chatr.services.auth import Viewer

log = logging.getLogger("chatr.websocket")

CLOSE_TOKEN_EXPIRED = 4401
CLOSE_SESSION_REVOKED = 4403


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):  # already closing from the other side
            await websocket.close(code=code, reason=reason)


async def _session_still_valid(context: Context, viewer: Viewer) -> bool:
    try:
        await auth.ensure_session_active(
            context.runtime, user_id=viewer.id, session_id=viewer.session_id
        )
    except Unauthenticated:
        return False
    return True


async def watch_connection(context: Context, viewer: Viewer) -> None:
    """Close the socket at token expiry, or as soon as its session is revoked anywhere."""
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    remaining = (viewer.token_expires_at - datetime.now(UTC)).total_seconds()
    try:
        async with asyncio.timeout(max(remaining, 0)):
            async with context.runtime.broker.subscribe(channels.user(viewer.id)) as sub:
                # A revocation committed before the subscription went live is caught here.
                if not await _session_still_valid(context, viewer):
                    await _close(websocket, CLOSE_SESSION_REVOKED, "Session revoked")
                    return
                async for item in sub:
                    if isinstance(item, Resync):
                        revoked = not await _session_still_valid(context, viewer)
                    elif isinstance(item, Message):
                        envelope = envelopes.decode(item.data)
                        revoked = isinstance(envelope, envelopes.SessionRevoked) and (
                            envelope.session_id in (None, viewer.session_id)
                        )
                    else:
                        revoked = False
                    if revoked:
                        await _close(websocket, CLOSE_SESSION_REVOKED, "Session revoked")
                        return
    except TimeoutError:
        await _close(websocket, CLOSE_TOKEN_EXPIRED, "Token expired")


async def on_connect(context: Context) -> None:
    """Authenticate from `connectionParams.authorization`; anonymous sockets are allowed."""
    params = context.connection_params or {}
    authorization = params.get("authorization") or params.get("Authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise Unauthenticated("connectionParams.authorization must be a string.")
    viewer = await context.authenticate(authorization)
    if viewer is not None:
        context.connection_tasks.append(asyncio.create_task(watch_connection(context, viewer)))
        context.presence = presence.ConnectionPresence(viewer.id)
        context.connection_tasks.append(
            asyncio.create_task(presence.track_connection(context.runtime, context.presence))
        )
