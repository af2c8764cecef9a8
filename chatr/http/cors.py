"""Cross-origin HTTP from the same `CHATR_ALLOWED_ORIGINS` that opens the WebSocket.

Auth is a bearer token a page sends itself, never a cookie, so no credentials are allowed
(`Access-Control-Allow-Credentials` is never sent): an allowed origin may read answers, and
send `Authorization` and `Content-Type: application/json` after a preflight. An origin not
listed gets no `Access-Control-*` header, so the browser keeps the answer from the page; its
preflight is refused with a coded 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from strawberry.http.websocket_origin import normalize_allowed_origins, normalize_origin

from chatr.errors import OriginNotAllowed

#: Methods /graphql answers over HTTP.
ALLOW = "GET, POST, OPTIONS"
#: Request headers a page may send: chatr's own and those Apollo Client adds.
ALLOWED_HEADERS = (
    "Authorization, Content-Type, Accept, GraphQL-Require-Preflight, Apollo-Require-Preflight, "
    "X-Apollo-Operation-Name, Apollographql-Client-Name, Apollographql-Client-Version"
)
#: How long a browser may reuse a preflight's answer, seconds.
MAX_AGE = "600"


class Cors:
    def __init__(self, allowed_origins: Iterable[str]) -> None:
        self.allowed = normalize_allowed_origins(tuple(allowed_origins))

    def allows(self, origin: str) -> bool:
        if "*" in self.allowed:
            return True
        normalized = normalize_origin(origin)
        return normalized is not None and normalized in self.allowed

    def headers(self, request: Request) -> dict[str, str]:
        """What every answer to this request carries: the origin echoed if allowed."""
        origin = request.headers.get("origin")
        if origin is None:
            return {}
        if self.allows(origin):
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {"Vary": "Origin"}

    def preflight(self, request: Request) -> dict[str, str]:
        """The headers of a preflight's 204; OriginNotAllowed if the origin is not listed."""
        origin = request.headers.get("origin") or ""
        if not self.allows(origin):
            raise OriginNotAllowed(
                f"Origin {origin!r} may not call this API: add it to CHATR_ALLOWED_ORIGINS."
            )
        return {
            **self.headers(request),
            "Access-Control-Allow-Methods": ALLOW,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
        }


def is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "origin" in request.headers
        and "access-control-request-method" in request.headers
    )
