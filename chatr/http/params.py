"""What an HTTP request asks for: one operation or a batch, from GET parameters or a JSON
POST body. Everything malformed is a coded refusal here, before any GraphQL runs."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from chatr import frames
from chatr.errors import MalformedRequest, PayloadTooLarge
from chatr.http.media import require_json_body


@dataclass(frozen=True)
class OperationRequest:
    """The GraphQL-over-HTTP request parameters of one operation. `query` may be absent
    when `extensions.persistedQuery` names a stored document."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


@dataclass(frozen=True)
class ParsedRequest:
    operations: list[OperationRequest]
    #: A JSON array was sent: the answer is an array too, even of one.
    batch: bool


async def limited_stream(
    request: Request, max_bytes: int, too_large: Callable[[int], Exception]
) -> AsyncGenerator[bytes, None]:
    """The body's chunks, refused with `too_large(max_bytes)` as soon as they pass
    `max_bytes` (or at once when Content-Length says they will), before they are all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise too_large(max_bytes)
        yield chunk


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (413) as soon as it passes `max_bytes`, before it is all read."""
    return b"".join([chunk async for chunk in limited_stream(request, max_bytes, _too_large)])


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body too large (over {max_bytes} bytes).", limit=max_bytes)


def _operation(payload: object) -> OperationRequest:
    problem = frames.operation_problem(payload)
    if problem is not None:
        raise MalformedRequest(problem)
    assert isinstance(payload, dict)
    return OperationRequest(
        query=payload.get("query"),
        variables=payload.get("variables"),
        operation_name=payload.get("operationName") or None,
        extensions=payload.get("extensions"),
    )


async def parse_post(request: Request, *, max_bytes: int, max_batch: int) -> ParsedRequest:
    require_json_body(request.headers.get("content-type"))
    body = await read_body(request, max_bytes)
    if not body.strip():
        raise MalformedRequest("The request body is empty: send the operation as JSON.")
    try:
        payload = frames.decode_json(body)
    except json.JSONDecodeError as error:
        raise MalformedRequest(f"The request body is not valid JSON ({error.msg}).") from None
    return operations_of(payload, max_batch=max_batch)


def operations_of(payload: object, *, max_batch: int) -> ParsedRequest:
    """One operation (an object) or a batch (an array of at most `max_batch`)."""
    if isinstance(payload, list):
        if not payload:
            raise MalformedRequest("A batch must hold at least one operation.")
        if len(payload) > max_batch:
            raise MalformedRequest(
                f"A batch may hold at most {max_batch} operations; this one has {len(payload)}.",
                maxBatch=max_batch,
            )
        return ParsedRequest([_operation(item) for item in payload], batch=True)
    return ParsedRequest([_operation(payload)], batch=False)


def _json_parameter(request: Request, name: str) -> dict[str, Any] | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = frames.decode_json(raw)
    except json.JSONDecodeError:
        raise MalformedRequest(f"The `{name}` parameter must be a JSON object.") from None
    if value is not None and not isinstance(value, dict):
        raise MalformedRequest(f"The `{name}` parameter must be a JSON object.")
    return value


def parse_get(request: Request) -> ParsedRequest:
    """GET parameters: `query`, `operationName`, and `variables` / `extensions` as JSON."""
    params = request.query_params
    return ParsedRequest(
        [
            OperationRequest(
                query=params.get("query") or None,
                variables=_json_parameter(request, "variables"),
                operation_name=params.get("operationName") or None,
                extensions=_json_parameter(request, "extensions"),
            )
        ],
        batch=False,
    )
