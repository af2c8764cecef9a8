"""`ErrorCode` in the SDL: every `extensions.code` chatr can answer, each with what it means.

Clients branch on `extensions.code`; listing the codes in the schema lets codegen give them a
typed union and GraphiQL's docs show them. The values are chatr.errors.ErrorCode's, one for
one (a test checks both ways); the descriptions live here because they are API documentation.
"""

from __future__ import annotations

import enum
from typing import Any

import strawberry

from chatr.errors import ErrorCode

DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHENTICATED: "No valid access token: sign in (or refresh the token) and retry.",
    ErrorCode.FORBIDDEN: "Signed in, but not allowed to do this (or the origin is not allowed).",
    ErrorCode.NOT_FOUND: "No such object that you may see: it never existed, is gone, or is "
    "not yours. Never says which.",
    ErrorCode.BAD_USER_INPUT: "An argument is invalid (`extensions.field` names it when one "
    "does): fix the input; retrying it unchanged fails the same way.",
    ErrorCode.CONFLICT: "The request clashes with the current state: a username or email "
    "already taken, a friend request already sent, a message already unsent.",
    ErrorCode.RATE_LIMITED: "Too many requests of this kind: retry after "
    "`extensions.retryAfter` seconds.",
    ErrorCode.QUOTA_EXCEEDED: "The user's uploads would use more storage than their quota allows.",
    ErrorCode.TWO_FACTOR_REQUIRED: "The password was right; finish with "
    "`verifyTwoFactorLogin(challenge, code)` (`extensions.challenge`, `extensions.method`).",
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: "The WebSocket already runs as many operations as one "
    "connection may.",
    ErrorCode.SUBSCRIBER_OVERFLOW: "A live subscriber fell too far behind and was cut; "
    "resubscribe with the last cursor.",
    ErrorCode.STREAM_FAILED: "A live stream failed on the server (logged); resubscribe from "
    "the error's `extensions.cursor`.",
    ErrorCode.BAD_REQUEST: "The request cannot be served as sent (bad JSON, no query, a "
    "subscription over HTTP): fix the request.",
    ErrorCode.SERVICE_UNAVAILABLE: "A backing service is briefly unreachable; nothing was "
    "done. Retry after `extensions.retryAfter` seconds.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The HTTP request body (or a batch) is over the server's "
    "limit (HTTP 413).",
    ErrorCode.METHOD_NOT_ALLOWED: "The HTTP method cannot run this request: a mutation over "
    "GET, say (HTTP 405 with `Allow`).",
    ErrorCode.NOT_ACCEPTABLE: "The `Accept` header names no media type chatr answers in "
    "(HTTP 406).",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "The POST body is not `application/json` in UTF-8 "
    "(HTTP 415).",
    ErrorCode.PERSISTED_QUERY_NOT_FOUND: "An automatic persisted query's hash is unknown "
    "here: resend it with its `query`.",
    ErrorCode.DOCUMENT_NOT_TRUSTED: "The server runs only pre-registered documents "
    "(trusted-documents mode) and this is not one of them.",
    ErrorCode.INTERNAL_SERVER_ERROR: "A bug on the server (logged there with its details, "
    "never shown). Report it; retrying may not help.",
    ErrorCode.GRAPHQL_PARSE_FAILED: "The document is not valid GraphQL syntax.",
    ErrorCode.GRAPHQL_VALIDATION_FAILED: "The document does not validate against the schema "
    "or exceeds the query limits (depth, aliases, complexity).",
}


def _schema_enum() -> type[enum.Enum]:
    missing = [code.name for code in ErrorCode if code not in DESCRIPTIONS]
    if missing:  # a new code must say what it means before the schema builds
        raise RuntimeError(f"ErrorCode values without a description: {', '.join(missing)}")
    members: dict[str, Any] = {
        code.name: strawberry.enum_value(code.value, description=DESCRIPTIONS[code])
        for code in ErrorCode
    }
    schema_enum: type[enum.Enum] = enum.Enum("ErrorCode", members)  # type: ignore[misc]
    return strawberry.enum(
        schema_enum,
        name="ErrorCode",
        description="Every `extensions.code` a chatr error can carry. Branch on the code, "
        "never on the message (messages are for people and may change).",
    )


ErrorCodeEnum = _schema_enum()
