"""`create_app(settings)`: the one ASGI application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from chatr import websocket as ws_lifecycle
from chatr.context import Context
from chatr.db import Database
from chatr.errors import BadRequest, ErrorCode
from chatr.mailer import create_mailer
from chatr.outbox import Outbox
from chatr.presence_store import create_presence_store
from chatr.pubsub.announcer import Announcer
from chatr.pubsub.broker import create_broker
from chatr.resolvers.loaders import Loaders
from chatr.runtime import Runtime
from chatr.schema import build_schema
from chatr.schema.broadcast import LIVE_OPERATION, LiveOperation
from chatr.schema.errors import with_code
from chatr.services import auth, presence, rate_limits
from chatr.services.live import LiveHub
from chatr.services.rate_limits import RateLimiter
from chatr.services.session_cache import SessionCache
from chatr.settings import Settings
from chatr.sms import create_sms_sender
from chatr.supervision import Supervisor, run_all

if TYPE_CHECKING:
    from cross_web import AsyncHTTPRequestAdapter  # strawberry's own dependency

log = logging.getLogger("chatr.app")


#: What HTTP may run: a subscription is a live stream, it needs a WebSocket.
HTTP_OPERATIONS = {OperationType.QUERY, OperationType.MUTATION}


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
    """

    context: Context

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)  # type: ignore[misc]
        except ws_lifecycle.Refused as refused:
            await self.refuse(refused)

    async def refuse(self, refused: ws_lifecycle.Refused) -> None:
        websocket = self.websocket  # type: ignore[attr-defined]
        await websocket.close(code=refused.close_code, reason=refused.reason)

    async def handle(self) -> None:
        try:
            await super().handle()  # type: ignore[misc]
        finally:
            await self.context.close()

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "error":
            payload = message.get("payload")
            for error in payload if isinstance(payload, list) else [payload]:
                if isinstance(error, dict) and "code" not in error.get("extensions", {}):
                    code = _protocol_error_code(str(error.get("message")))
                    error["extensions"] = {**error.get("extensions", {}), "code": code.value}
        await super().send_message(message)  # type: ignore[misc]


def _frame_send(context: Context) -> Send:
    """How live fan-out writes this socket's frames: the server's own send when
    `RawWebSocketSend` kept it, else starlette's."""
    websocket = context.request
    return websocket.scope.get(RAW_SEND) or websocket.send  # type: ignore[no-any-return]


class TransportWSHandler(_ChatrProtocol, BaseGraphQLTransportWSHandler[Context, None]):
    async def run_operation(self, operation: Operation[Context, None]) -> None:
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
    async def refuse(self, refused: ws_lifecycle.Refused) -> None:
        # graphql-ws says why in a frame before closing.
        payload = {"message": refused.reason, "extensions": {"code": refused.error_code.value}}
        await self.send_message({"type": "connection_error", "payload": payload})
        await super().refuse(refused)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
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
        await super().handle_async_results(operation_id, query, operation_name, variables)


class ChatrGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        runtime: Runtime = request.app.state.runtime
        is_websocket = isinstance(request, WebSocket)
        return Context(
            runtime=runtime,
            request=request,
            response=response,
            loaders=Loaders(runtime, cache=not is_websocket),
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if result.errors:
            response["errors"] = [
                with_code(formatted, error)  # type: ignore[misc]
                for formatted, error in zip(response["errors"], result.errors, strict=True)
            ]
        return response

    async def on_ws_connect(self, context: Context) -> None:
        try:
            await ws_lifecycle.on_connect(context)
        except Exception as error:
            raise ws_lifecycle.refusal(error) from error

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's, but queries and mutations only, by POST only; a request that cannot
        run is a BAD_REQUEST error (HTTP 400) with a code, like every other error, instead of
        a plain-text 400 or a subscription executed as a query (which failed as INTERNAL)."""
        allowed = HTTP_OPERATIONS if request_adapter.method == "POST" else set()
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                message = "Subscriptions run over a WebSocket at /graphql, not over HTTP."
            else:
                message = "Send queries and mutations with POST."
        except CannotGetOperationTypeError as error:
            message = error.as_http_error_reason()
        except MissingQueryError:
            message = "No GraphQL query found in the request."
        sub_response.status_code = 400
        return ExecutionResult(
            data=None, errors=[GraphQLError(message, original_error=BadRequest(message))]
        )


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


class BodySizeLimit:
    """Refuse request bodies over the limit (413) before anything parses them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await PlainTextResponse("Request body too large", status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await PlainTextResponse("Request body too large", status_code=413)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


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
    graphql = ChatrGraphQL(
        schema,
        graphql_ide=None if settings.is_production else "graphiql",
        allow_queries_via_get=False,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=settings.allowed_origins,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings)
        broker = create_broker(
            settings.broker_url,
            prefix=settings.channel_prefix,
            queue_size=settings.subscriber_queue_size,
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
            overrides={rate_limits.SEND_MESSAGE.name: settings.send_message_limit},
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
        )
        app.state.runtime = runtime
        supervisor.spawn("revocation-watcher", lambda: auth.watch_revocations(runtime))
        supervisor.spawn("presence-sweeper", lambda: presence.sweep_forever(runtime))
        # Everything built so far lives as long as the process: move it out of the cyclic
        # collector's reach so full collections do not keep re-scanning schema and ORM state.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await run_all(
                [
                    # First, while its task still runs: queued mail gets its chance.
                    ("outbox", outbox.stop),
                    ("background tasks", supervisor.stop),
                    ("live hub", live.stop),
                    ("announcer", announcer.stop),
                    ("broker", broker.stop),
                    ("presence store", runtime.presence.close),
                    ("rate limits", limits.close),
                    ("database", db.dispose),
                ]
            )

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(RawWebSocketSend)
    return app
