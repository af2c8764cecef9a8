"""The per-request (HTTP) or per-connection (WebSocket) GraphQL context."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket

from chatr.errors import Unauthenticated
from chatr.resolvers.loaders import Loaders
from chatr.runtime import Runtime
from chatr.security import bearer_token
from chatr.services import auth
from chatr.services.auth import Viewer
from chatr.services.presence import ConnectionPresence


@dataclass
class Context:
    runtime: Runtime
    request: Request | WebSocket
    response: Any
    loaders: Loaders
    #: Set by the WebSocket protocol handlers from `connection_init`.
    connection_params: dict[str, object] | None = None
    _viewer: Viewer | None = None
    _viewer_checked: bool = False
    #: This WebSocket's part in its user's presence (None over HTTP and for anonymous sockets).
    presence: ConnectionPresence | None = None
    #: Background tasks tied to a WebSocket connection (token expiry, revocation watch).
    connection_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def authenticate(self, authorization: str | None) -> Viewer | None:
        """Resolve the viewer from an `Authorization` value; UNAUTHENTICATED if it is bad."""
        token = bearer_token(authorization)
        self._viewer = (
            None if token is None else await auth.viewer_from_token(self.runtime, token=token)
        )
        self._viewer_checked = True
        return self._viewer

    async def optional_viewer(self) -> Viewer | None:
        if not self._viewer_checked:
            await self.authenticate(self.request.headers.get("authorization"))
        return self._viewer

    async def viewer(self) -> Viewer:
        viewer = await self.optional_viewer()
        if viewer is None:
            raise Unauthenticated("Log in first: send 'Authorization: Bearer <access token>'.")
        return viewer

    async def close(self) -> None:
        for task in self.connection_tasks:
            task.cancel()
        for task in self.connection_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.connection_tasks.clear()
