"""The per-request (HTTP) or per-connection (WebSocket) GraphQL context.

Resolvers ask the context about the viewer in the narrowest terms they need: "is the viewer
this user?" (`viewer_is`), "where does the viewer stand with them?" (`standing_with`), or, when
nothing narrower will do, the viewer itself. That is what lets one execution of a live event
serve many subscribers: a context built `shared` records each fact consulted with its value,
and the result is reused for exactly the viewers for whom every one of those facts is the same
(see chatr.schema.broadcast). Reading the viewer itself records its identity, which makes the
result that viewer's alone, so a resolver can be wrong only by sharing too little.

What the context holds about one connection rather than about the viewer (its request, its
`connection_params`, its presence, the viewer as authenticated there) is recorded nowhere, so a
resolver that personalised through it would have one viewer's payload sent to others. A shared
execution's context (`SharedRenderContext`) refuses those reads with `SharedRenderMisuse`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket

from chatr.errors import Unauthenticated
from chatr.loaders import Loaders
from chatr.runtime import Runtime
from chatr.security import bearer_token
from chatr.services import auth
from chatr.services.auth import Viewer
from chatr.services.presence import ConnectionPresence
from chatr.services.privacy import Standing

#: A viewer-dependent fact a resolver consulted: ("identity",), ("is", user_id) or
#: ("standing", user_id).
Fact = tuple[str, ...] | tuple[str, int]
IDENTITY: Fact = ("identity",)


class SharedFacts:
    """The facts about its viewer one shared execution consulted, with their values.

    `standings` answers "where does this viewer stand with that user" for every viewer the
    result may serve, in one query per user (the broadcast renderer batches it).
    """

    def __init__(
        self, viewer_id: int, standings: Callable[[int, int], Awaitable[Standing]]
    ) -> None:
        self.viewer_id = viewer_id
        self._standings = standings
        self.consulted: dict[Fact, object] = {}

    def record(self, fact: Fact, value: object) -> None:
        self.consulted[fact] = value

    async def standing(self, user_id: int) -> Standing:
        standing = await self._standings(self.viewer_id, user_id)
        self.consulted[("standing", user_id)] = standing
        return standing


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
    #: Set when one execution's result is meant for many viewers (live fan-out).
    shared: SharedFacts | None = None

    async def authenticate(self, authorization: str | None) -> Viewer | None:
        """Resolve the viewer from an `Authorization` value; UNAUTHENTICATED if it is bad."""
        token = bearer_token(authorization)
        self._viewer = (
            None if token is None else await auth.viewer_from_token(self.runtime, token=token)
        )
        self._viewer_checked = True
        return self._viewer

    async def optional_viewer(self) -> Viewer | None:
        if self.shared is not None:
            self.shared.record(IDENTITY, self.shared.viewer_id)
        return await self._known_viewer()

    async def viewer(self) -> Viewer:
        viewer = await self.optional_viewer()
        if viewer is None:
            raise Unauthenticated("Log in first: send 'Authorization: Bearer <access token>'.")
        return viewer

    async def viewer_is(self, user_id: int) -> bool:
        """Whether the viewer is `user_id` (False when anonymous)."""
        viewer = await self._known_viewer()
        answer = viewer is not None and viewer.id == user_id
        if self.shared is not None:
            self.shared.record(("is", user_id), answer)
        return answer

    async def standing_with(self, user_id: int) -> Standing:
        """Where the viewer stands with `user_id` (SELF for themselves; an anonymous viewer is
        a stranger to everyone)."""
        viewer = await self._known_viewer()
        if viewer is None:
            return Standing.STRANGER
        if self.shared is not None:
            return await self.shared.standing(user_id)
        # Shielded: several fields of one user await the same loader future, and a sibling
        # that graphql-core cancels (a field error nulled their parent) must not cancel it
        # for the others.
        return await asyncio.shield(self.loaders.standing.load((viewer.id, user_id)))

    @property
    def authenticated_viewer(self) -> Viewer | None:
        """The viewer once authentication ran (a WebSocket's, after `connection_init`)."""
        return self._viewer

    async def _known_viewer(self) -> Viewer | None:
        if not self._viewer_checked:
            await self.authenticate(self.request.headers.get("authorization"))
        return self._viewer

    async def close(self) -> None:
        for task in self.connection_tasks:
            task.cancel()
        for task in self.connection_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.connection_tasks.clear()


class SharedRenderMisuse(RuntimeError):
    """A resolver read per-connection state while rendering one result for many viewers.

    A programming error, never a client's: ask the context `viewer_is`, `standing_with` or
    `viewer()` instead, which record what the result depends on.
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Context.{name} is not available while one result is rendered for many viewers "
            "(chatr.schema.broadcast): it would send one connection's view to every viewer. "
            "Use viewer_is, standing_with or viewer(), which record what the result depends on."
        )


def _refused(name: str) -> property:
    def read(_: Context) -> Any:
        raise SharedRenderMisuse(name)

    def write(_: Context, __: object) -> None:
        """Set by the dataclass constructor; a shared render never reads it back."""

    return property(read, write)


class SharedRenderContext(Context):
    """The context of a shared execution (`shared` is set): per-connection state refused."""

    request = _refused("request")
    connection_params = _refused("connection_params")
    presence = _refused("presence")
    authenticated_viewer = _refused("authenticated_viewer")
