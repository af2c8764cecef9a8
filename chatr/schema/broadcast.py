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

Each subscriber's payloads go out through its `SocketOutlet` (chatr.schema.socket_outlet).
The protocol handlers (chatr.app) tell the subscription resolvers which WebSocket operation
they serve through `LIVE_OPERATION`; without one (e.g. a subscription over HTTP), streams fall
back to strawberry's own per-subscriber execution.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
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
from starlette.websockets import WebSocket
from strawberry.execution import optimized_is_awaitable

from chatr.context import IDENTITY, Fact, SharedFacts, SharedRenderContext
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Deliver, StreamItem, Tap
from chatr.loaders import Loaders
from chatr.runtime import Runtime
from chatr.schema.errors import present
from chatr.schema.events import is_exposed
from chatr.schema.socket_outlet import LIVE_OPERATION, LiveOperation, SocketOutlet
from chatr.services.privacy import Standing

if TYPE_CHECKING:
    from chatr.schema.info import ChatrInfo

log = logging.getLogger(__name__)

#: strawberry's fast check, typed as graphql-core's `is_awaitable` parameter wants it.
_is_awaitable = cast(Callable[[Any], TypeGuard[Awaitable[Any]]], optimized_is_awaitable)


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
