"""Live fan-out over WebSockets: resolve an event once per selection and viewer shape, encode
it once, and send every subscriber sharing both the same bytes in its own frame.

Stock strawberry executes the subscription's selection set for every subscriber and every
event (~100 µs of CPU each). Here the subscriptions of one instance that sent the same
document, operation and variables (those the selection uses: `conversationId` or `afterSeq`
do not change what an event looks like) share one `BroadcastRenderer`. For each event it
executes the selection for one subscriber with a context that records every viewer-dependent
fact the resolvers consulted (chatr.context), then reuses that payload for every other
subscriber for whom all those facts hold alike: usually one execution for the sender's own
devices and one for everyone else. Authorization stays on the one path: the same resolvers,
the same `may_see`, only asked fewer times.

The protocol handlers (chatr.app) tell the subscription resolvers which WebSocket operation
they serve through `LIVE_OPERATION`; without one (e.g. a subscription over HTTP), streams fall
back to strawberry's own per-subscriber execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLSchema,
    Node,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    execute,
    parse,
    visit,
)
from starlette.types import Message
from starlette.websockets import WebSocket
from strawberry.execution import optimized_is_awaitable

from chatr.aio import start_eagerly
from chatr.context import IDENTITY, Context, Fact, SharedFacts, SharedRenderContext
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Deliver, StreamItem, Tap
from chatr.loaders import Loaders
from chatr.runtime import Runtime
from chatr.schema.errors import present
from chatr.schema.events import is_exposed
from chatr.services.auth import Viewer
from chatr.services.privacy import Standing

if TYPE_CHECKING:
    from chatr.schema.info import ChatrInfo

log = logging.getLogger(__name__)

#: An ASGI send that is a coroutine function (uvicorn's and starlette's are), so a frame's
#: write can start at once in the caller's task (`start_eagerly`).
SocketSend = Callable[[Message], Coroutine[Any, Any, None]]
#: strawberry's fast check, typed as graphql-core's `is_awaitable` parameter wants it.
_is_awaitable = cast(Callable[[Any], TypeGuard[Awaitable[Any]]], optimized_is_awaitable)


@dataclass(frozen=True, slots=True)
class LiveOperation:
    """The WebSocket operation a subscription resolver runs for."""

    query: str
    variables: Mapping[str, Any] | None
    operation_name: str | None
    #: The operation's frame up to its payload, e.g. '{"id":"1","type":"next","payload":'.
    frame_head: str
    #: The socket's ASGI send (it takes `{"type": "websocket.send", "text": ...}`).
    send: SocketSend

    @classmethod
    def create(
        cls,
        *,
        legacy: bool,
        operation_id: str,
        query: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
        send: SocketSend,
    ) -> LiveOperation:
        """Results are `next` messages on graphql-transport-ws, `data` on the legacy graphql-ws."""
        frame_id = json.dumps(operation_id)
        head = (
            '{"type":"data","id":' + frame_id + ',"payload":'
            if legacy
            else '{"id":' + frame_id + ',"type":"next","payload":'
        )
        return cls(query, variables, operation_name, head, send)


#: Set by the protocol handlers in each operation's task.
LIVE_OPERATION: ContextVar[LiveOperation | None] = ContextVar("chatr_live_operation", default=None)


def delivery_for(info: ChatrInfo) -> tuple[BroadcastRenderer | None, SocketOutlet | None]:
    """The renderer and outlet for a subscription over a WebSocket; (None, None) otherwise."""
    operation = LIVE_OPERATION.get()
    context = info.context
    if operation is None or not isinstance(context.request, WebSocket):
        return None, None
    renderer = _renderer_for(context.runtime, info.schema, operation)
    outlet = SocketOutlet(
        operation, connection=context, limit=context.runtime.settings.subscriber_queue_size
    )
    return renderer, outlet


# -- the renderer ----------------------------------------------------------------------------

_renderers: weakref.WeakValueDictionary[tuple[object, ...], BroadcastRenderer] = (
    weakref.WeakValueDictionary()
)


def _renderer_for(runtime: Runtime, schema: Any, operation: LiveOperation) -> BroadcastRenderer:
    document = _parse(operation.query)
    variables = dict(operation.variables or {})
    used = _variables_below_root(document, operation.operation_name)
    shared_values = json.dumps(
        {name: variables[name] for name in sorted(used) if name in variables},
        sort_keys=True,
        default=str,
    )
    key = (id(runtime), operation.query, operation.operation_name, shared_values)
    renderer = _renderers.get(key)
    if renderer is None:
        renderer = BroadcastRenderer(
            runtime=runtime,
            schema=schema._schema,
            executor_class=schema.execution_context_class,
            document=document,
            operation_name=operation.operation_name,
            variables=variables,
        )
        _renderers[key] = renderer
    return renderer


@functools.lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode:
    # strawberry parsed and validated it already; the cache keeps this to once per document.
    return parse(query)


@functools.lru_cache(maxsize=512)
def _variables_below_root(document: DocumentNode, operation_name: str | None) -> frozenset[str]:
    """Variables an event's payload can depend on: all but those only the root field's own
    arguments use (fragments count whole, which can only share less)."""
    names: set[str] = set()

    class Collect(Visitor):
        def enter_variable(self, node: VariableNode, *_: object) -> None:
            names.add(node.name.value)

    def collect(node: Node | None) -> None:
        if node is not None:
            visit(node, Collect())

    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            collect(definition)
        elif isinstance(definition, OperationDefinitionNode) and (
            operation_name is None
            or (definition.name is not None and definition.name.value == operation_name)
        ):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    collect(selection.selection_set)
                    for directive in selection.directives or ():
                        collect(directive)
                else:
                    collect(selection)
    return frozenset(names)


class BroadcastRenderer:
    """Every WebSocket subscription on this instance with one document, operation and shared
    variables: renders each event once per viewer shape."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        schema: GraphQLSchema,
        executor_class: Any,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any],
    ) -> None:
        self._runtime = runtime
        self._schema = schema
        self._executor_class = executor_class
        self._document = document
        self._operation_name = operation_name
        self._variables = variables

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver:
        if not is_exposed(item):
            return _nothing
        loaders = Loaders(self._runtime, cache=True)
        standings = _Standings(loaders, taps)
        shapes = _Shapes()
        payloads: list[str] = []
        for tap in taps:
            payload = shapes.find(tap.viewer_id, standings)
            if payload is None:
                outlet = cast(SocketOutlet, tap.outlet)
                payload, consulted = await self._execute(item, outlet, loaders, standings)
                if not consulted and not payloads:
                    # Nothing about the viewer mattered: everyone gets this payload.
                    payloads = [payload] * len(taps)
                    break
                shapes.add(consulted, payload)
            payloads.append(payload)
        position = item.id if isinstance(item, LoggedEvent) else None

        def deliver() -> None:
            for tap, payload in zip(taps, payloads, strict=True):
                if not tap.ended:
                    tap.outlet.write(payload, position)  # type: ignore[union-attr]

        return deliver

    async def _execute(
        self, item: StreamItem, outlet: SocketOutlet, loaders: Loaders, standings: _Standings
    ) -> tuple[str, dict[Fact, object]]:
        self._runtime.live.counters["executions"] += 1
        viewer = outlet.viewer
        shared = SharedFacts(viewer.id, standings.of)
        context = SharedRenderContext(
            runtime=self._runtime,
            request=outlet.connection.request,
            response=None,
            loaders=loaders,
            _viewer=viewer,
            _viewer_checked=True,
            shared=shared,
        )
        result = execute(
            self._schema,
            self._document,
            root_value=item,
            context_value=context,
            variable_values=self._variables,
            operation_name=self._operation_name,
            executor_class=self._executor_class,
            is_awaitable=_is_awaitable,
        )
        if optimized_is_awaitable(result):
            result = await cast(Awaitable[ExecutionResult], result)
        result = cast(ExecutionResult, result)
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in present(list(result.errors))]
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False), shared.consulted


def _nothing() -> None:
    return None


class _Standings:
    """Where each viewer a render serves stands with a user, loaded for all of them at once
    the first time any execution asks about that user."""

    def __init__(self, loaders: Loaders, taps: Sequence[Tap]) -> None:
        self._loaders = loaders
        self._taps = taps
        self._by_user: dict[int, asyncio.Future[dict[int, Standing]]] = {}

    async def of(self, viewer_id: int, user_id: int) -> Standing:
        loading = self._by_user.get(user_id)
        if loading is None:
            loading = self._by_user[user_id] = asyncio.ensure_future(self._load(user_id))
        return (await asyncio.shield(loading))[viewer_id]

    def known(self, viewer_id: int, user_id: int) -> Standing:
        """After some execution asked about `user_id` (so it is loaded)."""
        return self._by_user[user_id].result()[viewer_id]

    async def _load(self, user_id: int) -> dict[int, Standing]:
        viewer_ids = sorted({tap.viewer_id for tap in self._taps})
        found = await self._loaders.standing.load_many([(v, user_id) for v in viewer_ids])
        return dict(zip(viewer_ids, found, strict=True))


class _Shapes:
    """Payloads by the facts their execution consulted and those facts' values.

    A viewer may reuse a payload when every fact its execution consulted has the same value for
    that viewer: the resolvers would take the same branches and produce the same result.
    """

    def __init__(self) -> None:
        self._tables: list[tuple[tuple[Fact, ...], dict[tuple[object, ...], str]]] = []

    def find(self, viewer_id: int, standings: _Standings) -> str | None:
        for facts, table in self._tables:
            payload = table.get(tuple(_value(fact, viewer_id, standings) for fact in facts))
            if payload is not None:
                return payload
        return None

    def add(self, consulted: dict[Fact, object], payload: str) -> None:
        facts = tuple(sorted(consulted, key=repr))
        values = tuple(consulted[fact] for fact in facts)
        for known, table in self._tables:
            if known == facts:
                table[values] = payload
                return
        self._tables.append((facts, {values: payload}))


def _value(fact: Fact, viewer_id: int, standings: _Standings) -> object:
    if fact == IDENTITY:
        return viewer_id
    kind, user_id = fact
    if kind == "is":
        return viewer_id == user_id
    return standings.known(viewer_id, cast(int, user_id))


# -- the socket end --------------------------------------------------------------------------


class SocketOutlet:
    """One subscription's end of its socket: frames payloads and sends them in order.

    A send to a writable socket completes at once (no task, no queue). When the socket stops
    taking data, later frames wait in a bounded backlog drained by one task; past the bound
    the subscription is cut with SUBSCRIBER_OVERFLOW and its cursor, so a stalled client never
    holds up the fan-out or grows the server's memory.
    """

    def __init__(self, operation: LiveOperation, *, connection: Context, limit: int) -> None:
        self.connection = connection
        self._head = operation.frame_head
        self._send = operation.send
        self._limit = limit
        self._backlog: deque[tuple[str, int | None]] = deque()
        #: A send that had to wait for the socket, and the task that carries on after it.
        self._in_flight: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._tap: Tap | None = None

    @property
    def viewer(self) -> Viewer:
        viewer = self.connection.authenticated_viewer
        assert viewer is not None, "live subscriptions are authenticated"
        return viewer

    def bind(self, tap: Tap) -> None:
        self._tap = tap

    def close(self) -> None:
        # Cancelled, not flushed: the cut's cursor says what the client got, and a frame
        # sent after it would arrive twice once the client resumes from there.
        self._backlog.clear()
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.cancel()
        drainer, self._drainer = self._drainer, None
        if drainer is not None and drainer is not asyncio.current_task():
            drainer.cancel()

    def write(self, payload: str, position: int | None) -> None:
        """Send one payload; `position` is its event id (None for typing)."""
        frame = self._head + payload + "}"
        if self._drainer is not None:
            if len(self._backlog) >= self._limit:
                self._lost(overflow=True)
                return
            self._backlog.append((frame, position))
            return
        try:
            pending = start_eagerly(self._send({"type": "websocket.send", "text": frame}))
        except Exception:
            self._lost()
            return
        if pending is None:
            if position is not None and self._tap is not None:
                self._tap.acknowledged = position
        else:
            self._in_flight = pending
            self._drainer = asyncio.ensure_future(self._drain(pending, position))

    async def _drain(self, pending: asyncio.Future[None], position: int | None) -> None:
        try:
            await pending
            self._in_flight = None
            self._sent(position)
            while self._backlog:
                frame, position = self._backlog.popleft()
                await self._send({"type": "websocket.send", "text": frame})
                self._sent(position)
        except Exception:
            self._lost()
        finally:
            if self._drainer is asyncio.current_task():
                self._drainer = None

    def _sent(self, position: int | None) -> None:
        if position is not None and self._tap is not None:
            self._tap.acknowledged = position

    def _lost(self, *, overflow: bool = False) -> None:
        """The client fell too far behind (overflow) or its socket is gone."""
        if self._tap is None:
            return
        if overflow:
            self._tap.overflowed()
        else:
            with contextlib.suppress(Exception):
                self._tap.end()
