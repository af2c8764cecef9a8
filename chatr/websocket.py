"""WebSocket connection lifecycle: authenticate on connect, close when the token stops being valid.

A WebSocket can outlive its access token by hours; HTTP requests re-check the session on
every call, so the socket must too. Close codes (both protocols):

- 4401: the token is not usable: refused at connect (garbage, expired, its session ended) or
  expired while connected. Refresh the token (or log in) and reconnect.
- 4403: the session was revoked while connected (logout, refresh-token reuse, suspension).
- 4429: too many sockets: this user, or this client address, already holds as many open
  sockets on this instance as it may (CHATR_MAX_SOCKETS_PER_USER / _PER_IP). Close another
  one (a tab) first. Legacy graphql-ws first gets `connection_error` with RATE_LIMITED.
- 4408: closed for idling unauthenticated: no token and no running operation for
  CHATR_ANONYMOUS_SOCKET_IDLE_SECONDS (graphql-transport-ws also uses it when no
  `connection_init` arrives in time). Reconnect with a token, or when there is work to do.
- 4400: a malformed message (not JSON, binary, a wrong shape; chatr.frames). Legacy
  graphql-ws first gets `connection_error` with BAD_REQUEST.
- 1013: the server cannot check the token right now (database unreachable); reconnect later.
- 1011: an internal failure (logged).

A socket is never left open unwatched: the watcher and the presence tracker run under a
per-connection `Supervisor` (not the instance's, so they do not show on /readyz), and when
either fails the socket is closed instead of living on past its token's expiry or revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.websockets import WebSocket, WebSocketState

from chatr import db
from chatr.context import Context
from chatr.errors import ErrorCode, Unauthenticated
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import BrokerUnavailable, Message, Resync
from chatr.services import auth, presence
from chatr.services.auth import Viewer
from chatr.supervision import Supervisor

log = logging.getLogger("chatr.websocket")

CLOSE_TOKEN_UNUSABLE = 4401
CLOSE_SESSION_REVOKED = 4403
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_IDLE_UNAUTHENTICATED = 4408


class Refused(Exception):
    """The socket is refused at `connection_init`: close it with `close_code`.

    The protocol handlers (chatr.app) close with this code on both protocols; the legacy one
    first sends `connection_error` with `error_code`.
    """

    def __init__(self, close_code: int, reason: str, error_code: ErrorCode) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason
        self.error_code = error_code


class WatchEnded(Exception):
    """The revocation feed ended while the socket was open (the broker stopped)."""


def refusal(error: Exception) -> Refused:
    """How a failure to set up a socket is told to its client; a bug is logged (once)."""
    if isinstance(error, Refused):
        return error
    if isinstance(error, Unauthenticated):
        return Refused(CLOSE_TOKEN_UNUSABLE, "Unauthorized", error.code)
    if db.is_unavailable(error):
        log.warning("socket refused, database unavailable: %s: %s", type(error).__name__, error)
        return Refused(CLOSE_TRY_AGAIN_LATER, "Try again later", ErrorCode.SERVICE_UNAVAILABLE)
    log.error("setting up a socket failed", exc_info=error)
    return Refused(CLOSE_INTERNAL_ERROR, "Internal error", ErrorCode.INTERNAL_SERVER_ERROR)


def close_code_for(error: BaseException) -> int:
    """The close code for a connection task that failed with `error`."""
    if isinstance(error, Unauthenticated):
        return CLOSE_TOKEN_UNUSABLE
    if isinstance(error, BrokerUnavailable) or db.is_unavailable(error):
        return CLOSE_TRY_AGAIN_LATER
    return CLOSE_INTERNAL_ERROR


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):  # already closing from the other side
            await websocket.close(code=code, reason=reason)


async def _session_still_valid(context: Context, viewer: Viewer) -> bool:
    """False when the session is revoked; a database failure propagates (the socket closes)."""
    try:
        await auth.ensure_session_active(
            context.runtime, user_id=viewer.id, session_id=viewer.session_id
        )
    except Unauthenticated:
        return False
    return True


async def watch_connection(context: Context, viewer: Viewer) -> None:
    """Close the socket at token expiry, or as soon as its session is revoked anywhere.

    Returns once it closed the socket; any failure to watch (database, broker) propagates, and
    the supervisor closes the socket (`close_on_failure`).
    """
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    remaining = (viewer.token_expires_at - datetime.now(UTC)).total_seconds()
    expiry = asyncio.timeout(max(remaining, 0))
    try:
        async with (
            expiry,
            context.runtime.broker.subscribe(channels.user(viewer.id)) as sub,
        ):
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
            raise WatchEnded("the revocation feed ended")
    except TimeoutError:
        if not expiry.expired():
            raise  # the database timed out, not the token: a failure to watch
        await _close(websocket, CLOSE_TOKEN_UNUSABLE, "Token expired")


def close_on_failure(websocket: WebSocket) -> Callable[[BaseException], Awaitable[None]]:
    """The supervisor's `on_failure` for a connection task: close the socket it served."""

    async def close(error: BaseException) -> None:
        code = close_code_for(error)
        reason = "Try again later" if code == CLOSE_TRY_AGAIN_LATER else "Internal error"
        await _close(websocket, code, reason)

    return close


def too_many_sockets(reason: str) -> Refused:
    return Refused(CLOSE_TOO_MANY_SOCKETS, reason, ErrorCode.RATE_LIMITED)


async def on_connect(context: Context, *, admit: Callable[[Viewer], None] | None = None) -> None:
    """Authenticate from `connectionParams.authorization`; anonymous sockets are allowed.

    `admit` may refuse the viewer (`Refused`, e.g. over the per-user socket cap) before
    anything is started for them.
    """
    params = context.connection_params or {}
    authorization = params.get("authorization") or params.get("Authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise Unauthenticated("connectionParams.authorization must be a string.")
    viewer = await context.authenticate(authorization)
    if viewer is None:
        return
    if admit is not None:
        admit(viewer)
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    tracked = presence.ConnectionPresence(viewer.id)
    context.presence = tracked
    # The connection's own supervisor: its tasks are logged and close the socket when they
    # fail, but they are this socket's business, not the instance's readiness.
    supervisor = Supervisor()
    on_failure = close_on_failure(websocket)
    for name, run in (
        ("socket-watch", lambda: watch_connection(context, viewer)),
        ("socket-presence", lambda: presence.track_connection(context.runtime, tracked)),
    ):
        record = supervisor.spawn(
            f"{name}:user-{viewer.id}", run, restart=False, on_failure=on_failure
        )
        assert record.task is not None
        context.connection_tasks.append(record.task)
