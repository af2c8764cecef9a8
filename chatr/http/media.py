"""Content negotiation and response bodies (GraphQL-over-HTTP spec, "Body" and "Status Codes").

Two media types are answered: `application/graphql-response+json`, whose status codes say
whether the operation ran (a request that failed before execution is 4xx), and
`application/json`, the legacy type, where every well-formed request answers 200 because a
4xx could come from any proxy. A request without `Accept` gets the former (the spec's
default since 2025-01-01); `*/*` gets the latter, which every client reads.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import orjson
from starlette.responses import Response

from chatr.errors import ChatrError, NotAcceptable, TransportError, UnsupportedMediaType


class Media(StrEnum):
    GRAPHQL_RESPONSE = "application/graphql-response+json"
    JSON = "application/json"


#: What each Accept entry means here; anything else is not answerable.
_ACCEPTED = {
    Media.GRAPHQL_RESPONSE.value: Media.GRAPHQL_RESPONSE,
    Media.JSON.value: Media.JSON,
    "application/*": Media.JSON,
    "*/*": Media.JSON,
}


def _media_ranges(header: str) -> list[tuple[str, float, dict[str, str]]]:
    """`Accept` entries as (type, q, other parameters), in the order given."""
    ranges = []
    for entry in header.split(","):
        kind, *parameters = (part.strip() for part in entry.split(";"))
        if not kind:
            continue
        quality = 1.0
        others: dict[str, str] = {}
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            name = name.strip().lower()
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            else:
                others[name] = value.strip().strip('"').lower()
        ranges.append((kind.lower(), quality, others))
    return ranges


def negotiate(accept: str | None) -> Media:
    """The media type to answer in, by the client's preference; NOT_ACCEPTABLE if neither."""
    if accept is None or not accept.strip():
        return Media.GRAPHQL_RESPONSE
    candidates = [
        (quality, -position, _ACCEPTED[kind])
        for position, (kind, quality, parameters) in enumerate(_media_ranges(accept))
        if kind in _ACCEPTED
        and quality > 0
        and parameters.get("charset", "utf-8") in {"utf-8", "utf8"}
    ]
    if not candidates:
        raise NotAcceptable(
            f"chatr answers {Media.GRAPHQL_RESPONSE} or {Media.JSON}; the request accepts neither."
        )
    return max(candidates)[2]


def accepts_html(accept: str | None) -> bool:
    """Whether a browser asks for a page (GraphiQL) rather than a GraphQL response."""
    return any(
        kind == "text/html" and quality > 0 for kind, quality, _ in _media_ranges(accept or "")
    )


def require_json_body(content_type: str | None) -> None:
    """A POST body must be `application/json` in UTF-8: anything else is 415 (also a guard
    against cross-site form posts, which cannot send this type without a CORS preflight)."""
    if content_type is None:
        raise UnsupportedMediaType(
            "Send the operation as JSON with 'Content-Type: application/json'."
        )
    kind, *parameters = (part.strip() for part in content_type.split(";"))
    charset = "utf-8"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if kind.lower() != Media.JSON or charset not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {content_type!r}: send 'application/json' (UTF-8)."
        )


def error_body(error: ChatrError) -> dict[str, Any]:
    """A refusal as a GraphQL response: one error with its code, and no `data` (nothing
    ran)."""
    extensions = {**error.extensions, "code": error.code.value}
    return {"errors": [{"message": error.message, "extensions": extensions}]}


def encode(body: object) -> bytes:
    """Compact UTF-8 JSON. orjson writes it (several times faster than `json.dumps` on every
    response); what it refuses (integers beyond 64 bits, keys that are not strings) is
    written by `json.dumps` as before."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def respond(
    body: object, *, status: int, media: Media, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        encode(body),
        status_code=status,
        media_type=f"{media.value}; charset=utf-8",
        headers=headers,
    )


def refusal(error: TransportError, media: Media, headers: dict[str, str] | None = None) -> Response:
    """A transport-level refusal. Under `application/graphql-response+json` a response
    without `data` is never 2xx (the spec's MUST)."""
    status = error.http_status
    if media is Media.GRAPHQL_RESPONSE and status < 400:
        status = 400
    return respond(
        error_body(error), status=status, media=media, headers={**error.headers, **(headers or {})}
    )
