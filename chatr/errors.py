"""The one error hierarchy. Services raise these; the schema maps them to `extensions.code`.

Anything else that escapes a resolver is a bug: it is logged and masked as
INTERNAL_SERVER_ERROR, so no stack trace or internal detail reaches a client. The one
exception is a transient infrastructure failure (the database unreachable or hung): that is
no bug, and the client is told SERVICE_UNAVAILABLE with when to retry (`ServiceUnavailable`).
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    #: The user's uploads would use more storage than their quota allows.
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    #: The password was right; finish with `verifyTwoFactorLogin(challenge, code)`.
    TWO_FACTOR_REQUIRED = "TWO_FACTOR_REQUIRED"
    #: The WebSocket already runs as many operations as one connection may.
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    #: A live subscriber fell too far behind and was cut; resubscribe with the last cursor.
    SUBSCRIBER_OVERFLOW = "SUBSCRIBER_OVERFLOW"
    #: A live stream failed on the server (logged); resubscribe from the error's `cursor`.
    STREAM_FAILED = "STREAM_FAILED"
    #: The request cannot be served as sent (a subscription over HTTP, say): fix the request.
    BAD_REQUEST = "BAD_REQUEST"
    #: A backing service is briefly unreachable; retry after `extensions.retryAfter` seconds.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    #: The HTTP request body (or a batch) is over the server's limit (HTTP 413).
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    #: The HTTP method cannot run this request: a mutation over GET, say (HTTP 405, `Allow`).
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    #: The `Accept` header names no media type chatr answers in (HTTP 406).
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    #: The POST body is not `application/json` in UTF-8 (HTTP 415).
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    #: An automatic persisted query's hash is unknown here: resend it with its `query`.
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    #: The server runs only pre-registered documents (`CHATR_TRUSTED_DOCUMENTS`).
    DOCUMENT_NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


class ChatrError(Exception):
    """A failure the client can act on. `code` is stable API; `message` is for humans."""

    code: ErrorCode = ErrorCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str, *, field: str | None = None, **extensions: object) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, object] = dict(extensions)
        if field is not None:
            self.extensions["field"] = field

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Unauthenticated(ChatrError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(ChatrError):
    code = ErrorCode.FORBIDDEN


class NotFound(ChatrError):
    code = ErrorCode.NOT_FOUND


class BadUserInput(ChatrError):
    code = ErrorCode.BAD_USER_INPUT


class Conflict(ChatrError):
    code = ErrorCode.CONFLICT


class BadRequest(ChatrError):
    """The request itself is wrong for this endpoint, whatever its variables say."""

    code = ErrorCode.BAD_REQUEST


class RateLimited(ChatrError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)


class QuotaExceeded(ChatrError):
    code = ErrorCode.QUOTA_EXCEEDED


class ServiceUnavailable(ChatrError):
    """A transient infrastructure failure: nothing was done, the same request may succeed
    after `retry_after` seconds (shown as `extensions.retryAfter`)."""

    code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)


class TwoFactorRequired(ChatrError):
    code = ErrorCode.TWO_FACTOR_REQUIRED

    #: What to ask for, by second-factor method (TOTP, SMS, EMAIL).
    PROMPTS = {
        "TOTP": "Enter the code from your authenticator app to finish signing in.",
        "SMS": "Enter the code texted to your phone to finish signing in.",
        "EMAIL": "Enter the code mailed to you to finish signing in.",
    }

    def __init__(self, *, challenge: str, method: str) -> None:
        super().__init__(
            self.PROMPTS.get(method, self.PROMPTS["TOTP"]), challenge=challenge, method=method
        )


class SubscriberOverflowError(ChatrError):
    code = ErrorCode.SUBSCRIBER_OVERFLOW


class StreamFailed(ChatrError):
    """Delivering a live event failed unexpectedly (logged where it failed); resume from the
    `cursor`. Its own code, not a masked INTERNAL_SERVER_ERROR: the client needs the cursor."""

    code = ErrorCode.STREAM_FAILED

    def __init__(self, message: str, *, cursor: str) -> None:
        super().__init__(message, cursor=cursor)


class TransportError(ChatrError):
    """An HTTP request refused before any GraphQL ran: it answers `http_status` with a
    GraphQL error body (chatr.http), never text/plain. `headers` go on the response."""

    code = ErrorCode.BAD_REQUEST
    http_status = 400

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, **extensions: object
    ) -> None:
        super().__init__(message)
        self.extensions.update(extensions)
        self.headers = dict(headers or {})


class MalformedRequest(TransportError):
    """Not a well-formed GraphQL-over-HTTP request: bad JSON, no query, wrong shapes."""

    code = ErrorCode.BAD_REQUEST


class PayloadTooLarge(TransportError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413


class MethodNotAllowed(TransportError):
    """The method cannot run this request; `allow` lists the ones that can (`Allow`)."""

    code = ErrorCode.METHOD_NOT_ALLOWED
    http_status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message, headers={"Allow": allow})


class NotAcceptable(TransportError):
    code = ErrorCode.NOT_ACCEPTABLE
    http_status = 406


class UnsupportedMediaType(TransportError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    http_status = 415


class PersistedQueryNotFound(TransportError):
    """Apollo's APQ protocol: clients look for this exact message (and the code) and resend
    the operation with its document. Status 200 under `application/json`, as Apollo
    Server answers, so every client version reads the body."""

    code = ErrorCode.PERSISTED_QUERY_NOT_FOUND
    http_status = 200

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class DocumentNotTrusted(TransportError):
    """Trusted-documents mode: only the manifest's documents run."""

    code = ErrorCode.DOCUMENT_NOT_TRUSTED
    http_status = 403


class OriginNotAllowed(TransportError):
    """A CORS preflight from an origin not in `CHATR_ALLOWED_ORIGINS`."""

    code = ErrorCode.FORBIDDEN
    http_status = 403
