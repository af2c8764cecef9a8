"""Map every GraphQL error to a stable `extensions.code`; mask the unexpected ones.

One place for the mapping: services raise `ChatrError`s, graphql-core reports parse and
validation failures, a database outage is SERVICE_UNAVAILABLE (retryable, logged as a warning
without traceback: it is no bug), and anything else is a bug that is logged here, once, with
its traceback, and shown to the client only as INTERNAL_SERVER_ERROR.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import MaskErrors
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from chatr import db
from chatr.errors import ChatrError, ErrorCode, ServiceUnavailable

log = logging.getLogger("chatr.errors")

INTERNAL_MESSAGE = "Internal server error."


def unavailable() -> ServiceUnavailable:
    """What a client is told of a database outage."""
    return ServiceUnavailable(
        f"The service is temporarily unavailable; retry in {db.RETRY_AFTER_SECONDS} s.",
        retry_after=db.RETRY_AFTER_SECONDS,
    )


#: How graphql-core words every failure to coerce a variable to its declared type.
_VARIABLE_ERROR_PREFIX = "Variable '$"


def _is_expected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or isinstance(original, ChatrError | GraphQLError)


def classify(error: GraphQLError) -> tuple[ErrorCode, dict[str, object]]:
    """The code (and extra extensions) for one error, unmasked."""
    original = error.original_error
    if isinstance(original, ChatrError):
        return original.code, original.extensions
    if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
        return ErrorCode.GRAPHQL_PARSE_FAILED, {}
    if isinstance(original, InvalidOperationTypeError | CannotGetOperationTypeError):
        # a query over legacy graphql-ws, or an operationName the document lacks: no bug
        return ErrorCode.BAD_REQUEST, {}
    if error.message.startswith(_VARIABLE_ERROR_PREFIX):
        return ErrorCode.BAD_USER_INPUT, {}
    if original is None:
        return ErrorCode.GRAPHQL_VALIDATION_FAILED, {}
    if isinstance(original, GraphQLError):
        return classify(original)
    if db.is_unavailable(original):
        return ErrorCode.SERVICE_UNAVAILABLE, unavailable().extensions
    return ErrorCode.INTERNAL_SERVER_ERROR, {}


class ChatrErrors(MaskErrors):
    """MaskErrors that also stamps `extensions.code` on every error it lets through."""

    def __init__(self) -> None:
        super().__init__(
            should_mask_error=lambda error: not _is_expected(error),
            error_message=INTERNAL_MESSAGE,
        )

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return present(errors)


def present(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Errors as a client may see them: each with its code; unexpected ones logged and masked.

    Also used by the live fan-out, which executes events outside strawberry's extensions.
    """
    processed: list[GraphQLError] = []
    for error in errors:
        code, extra = classify(error)
        if code is ErrorCode.INTERNAL_SERVER_ERROR:
            log.error("unexpected error at %s", error.path, exc_info=error.original_error)
            error = _anonymise(error, INTERNAL_MESSAGE)
        elif code is ErrorCode.SERVICE_UNAVAILABLE and not isinstance(
            error.original_error, ChatrError
        ):
            log.warning(
                "database unavailable at %s: %s", error.path, _describe(error.original_error)
            )
            replacement = unavailable()
            error = _anonymise(error, replacement.message, replacement)
        processed.append(
            GraphQLError(
                error.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                original_error=error.original_error,
                extensions={**(error.extensions or {}), **extra, "code": code.value},
            )
        )
    return processed


def _anonymise(
    error: GraphQLError, message: str, replacement: ChatrError | None = None
) -> GraphQLError:
    """As MaskErrors does: the message replaced, the original error dropped (no internal
    detail survives to be formatted), or replaced by what the client may see of it."""
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=replacement,
    )


def _describe(error: BaseException | None) -> str:
    """One line for the log: the outage is expected, its traceback is noise."""
    return "unknown" if error is None else f"{type(error).__name__}: {error}".splitlines()[0]


def with_code(formatted: Mapping[str, Any], error: GraphQLError) -> dict[str, Any]:
    """Last line of defence for errors raised before any extension ran (parse errors)."""
    extensions = dict(formatted.get("extensions") or {})
    if "code" not in extensions:
        code, extra = classify(error)
        extensions.update(extra, code=code.value)
        if code is ErrorCode.INTERNAL_SERVER_ERROR:
            log.error("unexpected error", exc_info=error.original_error or error)
            formatted = {**formatted, "message": INTERNAL_MESSAGE}
        elif code is ErrorCode.SERVICE_UNAVAILABLE:
            formatted = {**formatted, "message": unavailable().message}
    return {**formatted, "extensions": extensions}
