"""`create_app(settings)`: the one ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from json import JSONDecodeError
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLSyntaxError
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from chatr import frames
from chatr import websocket as ws_lifecycle
from chatr.aio import GroupCommit
from chatr.client_address import client_ip
from chatr.context import Context
from chatr.db import Database
from chatr.errors import ErrorCode
from chatr.http import GraphQLHTTP
from chatr.http import uploads as media_routes
from chatr.http.persisted import document_hash, untrusted
from chatr.infra import heap, rate_limits
from chatr.infra.link_fetch import PreviewQueue
from chatr.infra.live import LiveHub
from chatr.infra.mailer import create_mailer
from chatr.infra.outbox import Outbox
from chatr.infra.presence_store import create_presence_store
from chatr.infra.rate_limits import RateLimiter
from chatr.infra.session_cache import SessionCache
from chatr.infra.sms import create_sms_sender
from chatr.infra.storage import create_storage
from chatr.loaders import Loaders
from chatr.pubsub.announcer import Announcer
from chatr.pubsub.broker import create_broker, uses_redis
from chatr.redis_lane import RedisCommands
from chatr.runtime import Runtime
from chatr.schema import build_schema
from chatr.schema.socket_outlet import LIVE_OPERATION, LiveOperation, SocketSend
from chatr.services import auth, link_previews, presence, send_statements, uploads
from chatr.services.auth import Viewer
from chatr.settings import Settings
from chatr.socket_registry import SocketRegistry, SocketSlot
from chatr.supervision import Supervisor, run_all

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

log = logging.getLogger("chatr.app")


def _protocol_error_code(message: str) -> ErrorCode:
    if message == "Subscription limit reached":
        return ErrorCode.TOO_MANY_SUBSCRIPTIONS
    return ErrorCode.BAD_USER_INPUT


class _ChatrProtocol:
    """Mixin for both WebSocket protocol handlers.

    Ends the connection's tasks with the socket, refuses a socket with the close code its
    failure calls for (chatr.websocket: 4401 for an unusable token on both protocols, where
    strawberry would close with 4403 or 1011), and stamps `extensions.code` on the error
    frames the protocol layer writes itself (they never pass through the schema's error
    extension), so every error a client sees has a stable code.

    Holds the socket's slot in the per-IP and per-user caps (chatr.socket_registry) for
    exactly as long as the handler runs, and closes it (4408) while it idles unauthenticated.
    """

    context: Context
    websocket: Any
    _idle_watch: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)  # type: ignore[misc]
        except ws_lifecycle.Refused as refused:
            await self.refuse(refused)
        if self.context.authenticated_viewer is not None and self._idle_watch is not None:
            self._idle_watch.cancel()

    async def refuse(self, refused: ws_lifecycle.Refused) -> None:
        await self.websocket.close(code=refused.close_code, reason=refused.reason)

    async def handle(self) -> None:
        sockets = self._view.sockets
        slot: SocketSlot | None = None
        try:
            slot = sockets.open(client_ip(self.context.request))
            if slot is None:
                await self.refuse(ws_lifecycle.too_many_sockets("Too many sockets from your IP"))
                return
            self.context.request.state.socket_slot = slot  # for the per-user cap at connect
            self._idle_watch = self._watch_idling(sockets)
            await super().handle()  # type: ignore[misc]
        finally:
            if slot is not None:
                sockets.release(slot)
            await self.context.close()

    @property
    def _view(self) -> ChatrGraphQL:
        return self.view  # type: ignore[attr-defined]

    def running_operations(self) -> int:
        raise NotImplementedError

    def _watch_idling(self, sockets: SocketRegistry) -> asyncio.Task[None] | None:
        """Close the socket once it ran no operation for the idle timeout, until it
        authenticates; under a per-connection supervisor, like the socket's other tasks."""
        timeout = self._view.anonymous_idle_seconds
        if timeout <= 0:
            return None

        async def watch() -> None:
            loop = asyncio.get_running_loop()
            idle_since = loop.time()
            while True:
                await asyncio.sleep(timeout / 4)
                if self.running_operations():
                    idle_since = loop.time()
                elif loop.time() - idle_since >= timeout:
                    sockets.closed_idle()
                    reason = "Idle without authentication"
                    await self.websocket.close(ws_lifecycle.CLOSE_IDLE_UNAUTHENTICATED, reason)
                    return

        record = Supervisor().spawn(
            "socket-idle",
            watch,
            restart=False,
            on_failure=ws_lifecycle.close_on_failure(self.context.request),  # type: ignore[arg-type]
        )
        assert record.task is not None
        self.context.connection_tasks.append(record.task)
        return record.task

    async def handle_message(self, message: Any) -> None:
        # strawberry indexes messages as it expects them: a list, a string payload or a
        # non-string id crashed the socket (no close code, a traceback in the log).
        problem = frames.message_problem(message)
        if problem is not None:
            await self.refuse_malformed(problem)
            return
        await super().handle_message(message)  # type: ignore[misc]

    async def refuse_malformed(self, reason: str) -> None:
        """Close with 4400 (graphql-transport-ws's code for a malformed message)."""
        await self.websocket.close(
            code=frames.CLOSE_BAD_REQUEST, reason=frames.close_reason(reason)
        )

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "error":
            payload = message.get("payload")
            for error in payload if isinstance(payload, list) else [payload]:
                if isinstance(error, dict) and "code" not in error.get("extensions", {}):
                    code = _protocol_error_code(str(error.get("message")))
                    error["extensions"] = {**error.get("extensions", {}), "code": code.value}
        await super().send_message(message)  # type: ignore[misc]


def _frame_send(context: Context) -> SocketSend:
    """How live fan-out writes this socket's frames: the server's own send when
    `RawWebSocketSend` kept it, else starlette's."""
    websocket = context.request
    assert isinstance(websocket, WebSocket), "live operations run on WebSockets only"
    raw: SocketSend | None = websocket.scope.get(RAW_SEND)
    return raw or websocket.send


class TransportWSHandler(_ChatrProtocol, BaseGraphQLTransportWSHandler[Context, None]):
    def running_operations(self) -> int:
        return len(self.operations)

    async def handle_task_exception(self, error: Exception) -> None:
        # the schema's document cache (chatr.schema.validation) raises a syntax error out of
        # `schema.stream` instead of returning it, and this hook would log it as a crash; the
        # spec says 4400.
        if isinstance(error, GraphQLSyntaxError):
            await self.refuse_malformed(error.message)
            return
        await super().handle_task_exception(error)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        untrusted = self._view.untrusted(operation.query)
        if untrusted is not None:
            await operation.send_initial_errors([untrusted])
            return
        # The operation's own task: what is set here is seen by its resolvers only.
        LIVE_OPERATION.set(
            LiveOperation.create(
                legacy=False,
                operation_id=operation.id,
                query=operation.query,
                variables=operation.variables,
                operation_name=operation.operation_name,
                send=_frame_send(self.context),
            )
        )
        await super().run_operation(operation)


class LegacyWSHandler(_ChatrProtocol, BaseGraphQLWSHandler[Context, None]):
    def running_operations(self) -> int:
        return len(self.tasks)

    async def refuse(self, refused: ws_lifecycle.Refused) -> None:
        # graphql-ws says why in a frame before closing.
        payload = {"message": refused.reason, "extensions": {"code": refused.error_code.value}}
        await self.send_message({"type": "connection_error", "payload": payload})
        await super().refuse(refused)

    async def refuse_malformed(self, reason: str) -> None:
        # graphql-ws has no close code of its own for this (strawberry ignored non-JSON frames
        # and crashed on the rest): say why in a frame, then close as graphql-transport-ws does.
        payload = {"message": reason, "extensions": {"code": ErrorCode.BAD_REQUEST.value}}
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send_message({"type": "connection_error", "payload": payload})
        await super().refuse_malformed(reason)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        untrusted = self._view.untrusted(query)
        if untrusted is not None:
            payload = untrusted.formatted
            await self.send_message({"type": "error", "id": operation_id, "payload": payload})
            return
        # The operation's own task: what is set here is seen by its resolvers only.
        LIVE_OPERATION.set(
            LiveOperation.create(
                legacy=True,
                operation_id=operation_id,
                query=query,
                variables=variables,
                operation_name=operation_name,
                send=_frame_send(self.context),
            )
        )
        try:
            await super().handle_async_results(operation_id, query, operation_name, variables)
        except GraphQLSyntaxError as error:
            # Raised out of `schema.subscribe` by the schema's document cache, not returned:
            # answer it like any other pre-execution error, with its code.
            payload = {
                "message": error.message,
                "extensions": {"code": ErrorCode.GRAPHQL_PARSE_FAILED.value},
            }
            await self.send_message({"type": "error", "id": operation_id, "payload": payload})


class ChatrWebSocketAdapter(ASGIWebSocketAdapter):
    """strawberry's, but a frame that is not JSON text is handed on as a `MalformedFrame`
    instead of ending the loop (graphql-ws silently skipped it; a frame nested too deep
    escaped as a RecursionError and dropped the socket without a close code)."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            try:
                text = await self.ws.receive_text()
            except KeyError:  # a binary frame
                yield frames.MalformedFrame("WebSocket message type must be text")
                continue
            except WebSocketDisconnect:
                return
            try:
                yield self.view.decode_json(text)
            except JSONDecodeError:
                yield frames.MalformedFrame("WebSocket message must be valid JSON")

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):  # already closing from the other side
                await self.ws.close(code=code, reason=reason)


class ChatrGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = ChatrWebSocketAdapter

    def __init__(
        self,
        schema: BaseSchema,
        *,
        sockets: SocketRegistry,
        anonymous_idle_seconds: float,
        trusted_documents: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        #: This instance's socket caps and counts (shown by `sockets.metrics()`).
        self.sockets = sockets
        self.anonymous_idle_seconds = anonymous_idle_seconds
        #: Trusted-documents mode (`CHATR_TRUSTED_DOCUMENTS`): the same manifest as HTTP's,
        #: so a WebSocket is no way around it.
        self.trusted_documents = trusted_documents

    def untrusted(self, query: str) -> GraphQLError | None:
        """The refusal of a document outside the trusted manifest, if the mode is on."""
        if self.trusted_documents is None:
            return None  # (no hashing otherwise: it is per operation)
        refused = untrusted(self.trusted_documents, document_hash(query))
        if refused is None:
            return None
        return GraphQLError(refused.message, extensions={"code": refused.code.value})

    def decode_json(self, data: str | bytes) -> object:
        return frames.decode_json(data)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        runtime: Runtime = request.app.state.runtime
        is_websocket = isinstance(request, WebSocket)
        return Context(
            runtime=runtime,
            request=request,
            response=response,
            loaders=Loaders(runtime, cache=not is_websocket),
        )

    async def on_ws_connect(self, context: Context) -> None:
        try:
            await ws_lifecycle.on_connect(context, admit=self._admitter(context))
        except Exception as error:
            raise ws_lifecycle.refusal(error) from error

    def _admitter(self, context: Context) -> Callable[[Viewer], None]:
        """Count the socket as its viewer's, or refuse it (4429) over the per-user cap."""
        slot: SocketSlot = context.request.state.socket_slot

        def admit(viewer: Viewer) -> None:
            if not self.sockets.claim_user(slot, viewer.id):
                raise ws_lifecycle.too_many_sockets("Too many sockets for this account")

        return admit


#: Where `RawWebSocketSend` keeps the server's send in a WebSocket's scope.
RAW_SEND = "chatr.raw_send"


class RawWebSocketSend:
    """Keep the server's own ASGI `send` in each WebSocket's scope.

    Live fan-out writes one frame per subscriber per event. starlette's `WebSocket.send` and
    its exception-handling wrapper re-check state on every call: a tenth of the CPU of a
    delivery at 1,000 subscribers. The outlets write through the server's send instead (which
    refuses a send on a closed socket by itself).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, RAW_SEND: send}
        await self.app(scope, receive, send)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


#: Each readiness probe's own bound: a hung dependency must make /readyz say 503 at once,
#: not hang it (a load balancer's health check gives up and keeps routing to us).
PROBE_TIMEOUT = 0.8


async def _database_answers(runtime: Runtime) -> bool:
    async with runtime.db.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


async def _broker_connected(runtime: Runtime) -> bool:
    # The broker's own task pings Redis (with its own timeouts) and keeps this flag current.
    return runtime.broker.ready


#: Probes given up on, still cleaning up (a hung connection takes seconds to close).
_abandoned_probes: set[asyncio.Task[bool]] = set()


async def _probe(name: str, check: Coroutine[Any, Any, bool]) -> bool:
    """One probe, answered within PROBE_TIMEOUT; a failure is one log line (it is no bug).

    The check runs as its own task so that giving up on it does not wait for its cleanup:
    cancelling a query on a hung server closes the connection, which itself waits seconds.
    """
    task = asyncio.create_task(check)
    try:
        done, _ = await asyncio.wait({task}, timeout=PROBE_TIMEOUT)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        _abandoned_probes.add(task)
        task.add_done_callback(_forget_probe)
        log.warning("readiness: %s check timed out", name)
        return False
    error = task.exception()
    if error is not None:
        log.warning("readiness: %s check failed (%s: %s)", name, type(error).__name__, error)
        return False
    return task.result()


def _forget_probe(task: asyncio.Task[bool]) -> None:
    _abandoned_probes.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its failure was already logged as a timeout


async def readyz(request: Request) -> Response:
    """Ready when the database answers, the broker is connected and every critical background
    task is healthy; answers within PROBE_TIMEOUT whatever hangs."""
    runtime: Runtime = request.app.state.runtime
    database, broker = await asyncio.gather(
        _probe("database", _database_answers(runtime)),
        _probe("broker", _broker_connected(runtime)),
    )
    checks = {"broker": broker, "database": database, "tasks": runtime.supervisor.healthy}
    ready = all(checks.values())
    return JSONResponse(
        {"ready": ready, **checks, "taskStatus": runtime.supervisor.status()},
        status_code=200 if ready else 503,
    )


def create_app(settings: Settings) -> Starlette:
    schema = build_schema(settings)
    http = GraphQLHTTP(schema, settings)
    graphql = ChatrGraphQL(
        schema,
        sockets=SocketRegistry(
            per_ip=settings.max_sockets_per_ip, per_user=settings.max_sockets_per_user
        ),
        anonymous_idle_seconds=settings.anonymous_socket_idle_seconds,
        trusted_documents=http.persisted.trusted,
        graphql_ide=None,  # GraphiQL is served by chatr.http, from local assets
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=settings.allowed_origins,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings)
        # One lane for the hot Redis commands (a send's rate-limit hit and its PUBLISH share
        # round trips); none on the embedded default.
        redis_commands = (
            RedisCommands.from_url(settings.broker_url) if uses_redis(settings.broker_url) else None
        )
        broker = create_broker(
            settings.broker_url,
            prefix=settings.channel_prefix,
            queue_size=settings.subscriber_queue_size,
            commands=redis_commands,
        )
        announcer = Announcer(broker)
        # Codes are logged only in development, where that is how a newcomer signs up.
        log_codes = not settings.is_production
        outbox = Outbox(
            mailer=create_mailer(settings.smtp_url, log_content=log_codes),
            sms=create_sms_sender(
                settings.sms_webhook_url, token=settings.sms_webhook_token, log_content=log_codes
            ),
            mail_from=settings.mail_from,
        )
        live = LiveHub(db=db, broker=broker, tick=settings.live_tick_seconds)
        limits = RateLimiter(
            broker_url=settings.broker_url,
            key_prefix=f"{settings.channel_prefix}:limits",
            enabled=settings.rate_limits,
            overrides={
                **dict(settings.rate_limit_overrides),
                rate_limits.SEND_MESSAGE.name: settings.send_message_limit,
                rate_limits.EDIT_MESSAGE.name: settings.edit_message_limit,
                rate_limits.REACTION.name: settings.reaction_limit,
                rate_limits.INBOX_CHANGE.name: settings.inbox_change_limit,
                rate_limits.UPLOAD.name: settings.upload_limit,
            },
            commands=redis_commands,
        )
        supervisor = Supervisor()
        await broker.start()
        await announcer.start(supervisor)
        await outbox.start(supervisor)
        await limits.start(supervisor)
        await live.start(supervisor)
        runtime = Runtime(
            settings=settings,
            db=db,
            broker=broker,
            announcer=announcer,
            sessions=SessionCache(ttl=settings.session_cache_seconds),
            limits=limits,
            outbox=outbox,
            presence=create_presence_store(settings.broker_url, prefix=settings.channel_prefix),
            live=live,
            supervisor=supervisor,
            storage=create_storage(settings),
            previews=PreviewQueue(),
            sends=GroupCommit(
                functools.partial(send_statements.store_all, db.autocommit_engine),
                concurrency=settings.send_batch_concurrency,
                limit=send_statements.BATCH_LIMIT,
                hold=settings.send_hold_ms / 1000,
            ),
        )
        app.state.runtime = runtime
        supervisor.spawn("revocation-watcher", lambda: auth.watch_revocations(runtime))
        supervisor.spawn("presence-sweeper", lambda: presence.sweep_forever(runtime))
        supervisor.spawn(uploads.SWEEPER, lambda: uploads.sweep_forever(runtime), critical=False)
        supervisor.spawn(
            link_previews.WORKER, lambda: link_previews.work_forever(runtime), critical=False
        )
        # Everything built so far lives as long as the process (chatr.infra.heap).
        heap.settle()
        try:
            yield
        finally:
            await run_all(
                [
                    # First, while its task still runs: queued mail gets its chance.
                    ("outbox", outbox.stop),
                    ("sends", runtime.sends.stop),
                    ("background tasks", supervisor.stop),
                    ("live hub", live.stop),
                    ("announcer", announcer.stop),
                    ("broker", broker.stop),
                    ("presence store", runtime.presence.close),
                    ("storage", runtime.storage.close),
                    ("rate limits", limits.close),
                    *([("redis commands", redis_commands.aclose)] if redis_commands else []),
                    ("persisted queries", http.close),
                    ("database", db.dispose),
                ]
            )

    app = Starlette(
        routes=[
            # Every method: chatr.http answers OPTIONS (CORS) and refuses the others with a
            # coded 405.
            Route("/graphql", http),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/media/uploads/{token}", media_routes.upload, methods=["PUT", "POST"]),
            Route("/media/files/{token}/{name}", media_routes.download, methods=["GET", "HEAD"]),
            Route(
                "/media/pictures/{token}/{variant}", media_routes.picture, methods=["GET", "HEAD"]
            ),
            *(
                [Route("/graphiql/assets/{name}", http.graphiql.asset)]
                if http.graphiql is not None
                else []
            ),
        ],
        lifespan=lifespan,
    )
    app.state.sockets = graphql.sockets
    app.add_middleware(RawWebSocketSend)
    return app
