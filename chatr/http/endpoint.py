"""The HTTP endpoint at /graphql: OPTIONS (CORS), GET (queries only) and POST (queries and
mutations, one or a batch), every refusal a GraphQL JSON error with a code.

Each operation of a batch runs exactly as if it had been sent alone: its own context (so its
own loaders and viewer lookup), the schema's query limits on its own document, and the rate
limits counted by its own resolver calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.http import process_result
from strawberry.schema import Schema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from chatr.context import Context
from chatr.errors import (
    BadRequest,
    MalformedRequest,
    MethodNotAllowed,
    TransportError,
)
from chatr.http.cors import ALLOW, Cors, is_preflight
from chatr.http.graphiql import GraphiQL
from chatr.http.media import Media, accepts_html, error_body, negotiate, refusal, respond
from chatr.http.multipart import is_multipart, multipart_operations
from chatr.http.params import (
    OperationRequest,
    ParsedRequest,
    operations_of,
    parse_get,
    parse_post,
)
from chatr.http.persisted import (
    PersistedQueries,
    create_document_store,
    load_trusted_documents,
)
from chatr.loaders import Loaders
from chatr.schema.errors import with_code
from chatr.schema.execution import execute_validated, takes_fast_path
from chatr.settings import Settings

if TYPE_CHECKING:
    from strawberry.schema import BaseSchema

    from chatr.runtime import Runtime

#: What each method may run. Subscriptions are live streams: they need the WebSocket.
_RUNS_OVER = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}


class GraphQLHTTP:
    """ASGI endpoint for HTTP requests to /graphql."""

    def __init__(self, schema: BaseSchema, settings: Settings) -> None:
        self.schema = schema
        #: Documents that validated before run without strawberry's per-request machinery
        #: (chatr.schema.execution), when the schema's extensions allow it.
        self.fast_path = isinstance(schema, Schema) and takes_fast_path(schema)
        self.max_body_bytes = settings.max_request_body_bytes
        self.max_batch = settings.max_batch
        self.max_multipart_bytes = settings.max_multipart_bytes
        self.max_files = settings.max_multipart_files
        self.cors = Cors(settings.allowed_origins)
        trusted = (
            load_trusted_documents(settings.trusted_documents)
            if settings.trusted_documents is not None
            else None
        )
        self.persisted = PersistedQueries(
            create_document_store(
                settings.broker_url,
                prefix=settings.channel_prefix,
                ttl_seconds=settings.persisted_query_ttl_seconds,
            ),
            trusted=trusted,
        )
        self.graphiql = None if settings.is_production else GraphiQL.from_settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def close(self) -> None:
        await self.persisted.close()

    async def handle(self, request: Request) -> Response:
        cors = self.cors.headers(request)
        media = Media.JSON  # refusals before negotiation are in the type every client reads
        try:
            if request.method == "OPTIONS":
                if is_preflight(request):
                    return Response(status_code=204, headers=self.cors.preflight(request))
                return Response(status_code=204, headers={"Allow": ALLOW, **cors})
            if request.method not in _RUNS_OVER:
                raise MethodNotAllowed(
                    f"/graphql answers {ALLOW} over HTTP, not {request.method}.", allow=ALLOW
                )
            accept = request.headers.get("accept")
            if self.graphiql is not None and self._wants_ide(request, accept):
                return self.graphiql.page()
            media = negotiate(accept)
            if request.method == "POST" and is_multipart(request.headers.get("content-type")):
                async with multipart_operations(
                    request, max_bytes=self.max_multipart_bytes, max_files=self.max_files
                ) as payload:
                    parsed = operations_of(payload, max_batch=self.max_batch)
                    return await self._answer(request, parsed, media, cors)
            return await self._answer(request, await self._parse(request), media, cors)
        except TransportError as error:
            return refusal(error, media, cors)

    async def _answer(
        self, request: Request, parsed: ParsedRequest, media: Media, cors: dict[str, str]
    ) -> Response:
        if parsed.batch:
            bodies = [await self._run_in_batch(request, op) for op in parsed.operations]
            return respond(bodies, status=200, media=media, headers=cors)
        body, ran = await self._run(request, parsed.operations[0])
        # A request error (nothing ran) is 400 only where the media type says so.
        status = 400 if not ran and media is Media.GRAPHQL_RESPONSE else 200
        return respond(body, status=status, media=media, headers=cors)

    @staticmethod
    def _wants_ide(request: Request, accept: str | None) -> bool:
        params = request.query_params
        return (
            request.method == "GET"
            and "query" not in params
            and "extensions" not in params
            and accepts_html(accept)
        )

    async def _parse(self, request: Request) -> ParsedRequest:
        if request.method == "GET":
            return parse_get(request)
        return await parse_post(request, max_bytes=self.max_body_bytes, max_batch=self.max_batch)

    async def _run_in_batch(self, request: Request, operation: OperationRequest) -> object:
        try:
            body, _ = await self._run(request, operation)
        except TransportError as error:
            return error_body(error)
        return body

    async def _run(
        self, request: Request, operation: OperationRequest
    ) -> tuple[dict[str, Any], bool]:
        """The GraphQL response for one operation, and whether it ran (False: a request
        error such as a parse or validation failure, answered without `data`)."""
        document = await self.persisted.document(operation)
        runtime: Runtime = request.app.state.runtime
        context = Context(
            runtime=runtime,
            request=request,
            response=Response(),
            loaders=Loaders(runtime, cache=True),
        )
        try:
            result = None
            if self.fast_path:
                assert isinstance(self.schema, Schema)
                result = await execute_validated(
                    self.schema,
                    document,
                    variable_values=operation.variables,
                    context_value=context,
                    operation_name=operation.operation_name,
                    allowed_operation_types=_RUNS_OVER[request.method],
                    operation_extensions=operation.extensions,
                )
            if result is None:
                result = await self.schema.execute(
                    document,
                    variable_values=operation.variables,
                    context_value=context,
                    operation_name=operation.operation_name,
                    allowed_operation_types=_RUNS_OVER[request.method],
                    operation_extensions=operation.extensions,
                )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise MalformedRequest(
                    "Subscriptions run over a WebSocket at /graphql, not over HTTP."
                ) from None
            raise MethodNotAllowed("Mutations run over POST, never GET.", allow="POST") from None
        except CannotGetOperationTypeError as error:
            message = error.as_http_error_reason()
            return error_body(BadRequest(message)), False
        except MissingQueryError:
            raise MalformedRequest("No GraphQL query found in the request.") from None
        body: dict[str, Any] = dict(process_result(result))
        errors: list[GraphQLError] = result.errors or []
        if errors:
            body["errors"] = [
                with_code(formatted, error)
                for formatted, error in zip(body["errors"], errors, strict=True)
            ]
        ran = result.data is not None or not errors or any(error.path for error in errors)
        if not ran:
            body.pop("data", None)
        return body, ran
