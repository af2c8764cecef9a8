"""What a well-formed GraphQL request is, over HTTP and over both WebSocket protocols.

Anything else is the client's mistake and gets a coded answer (HTTP 400 BAD_REQUEST, or close
code 4400 on a socket), never a crash: strawberry assumes the JSON it decodes has the right
shape (`data.get("query")` on a list, `payload["query"]` on a string), and `json.loads` fails
on deep nesting or invalid UTF-8 with errors nobody catches, which ended in HTTP 500 or a
socket dropped without a close code, with a traceback in the log each time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: The close code for a malformed frame on both protocols (graphql-transport-ws's "bad request").
CLOSE_BAD_REQUEST = 4400

#: A WebSocket close reason may hold 123 bytes.
_MAX_REASON = 120


def decode_json(data: str | bytes) -> object:
    """`json.loads`, but every undecodable input is a `JSONDecodeError` (which strawberry
    answers with a 400 over HTTP and 4400 on a socket): invalid UTF-8 and nesting too deep for
    the decoder's recursion are no server error."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        what = "invalid UTF-8" if isinstance(error, UnicodeDecodeError) else "nested too deep"
        raise json.JSONDecodeError(f"Malformed JSON: {what}", "", 0) from None


def operation_problem(payload: object) -> str | None:
    """Why `payload` is not a GraphQL operation (`query`, `variables`, `operationName`,
    `extensions`), or None. `query` may be absent over HTTP: strawberry reports that itself."""
    if not isinstance(payload, dict):
        return "The operation must be a JSON object with a `query`."
    if not isinstance(payload.get("query"), str | None):
        return "The operation's `query` must be a string."
    for key in ("variables", "extensions"):
        if not isinstance(payload.get(key), dict | None):
            return f"The operation's `{key}` must be an object."
    if not isinstance(payload.get("operationName"), str | None):
        return "The operation's `operationName` must be a string."
    return None


@dataclass(frozen=True)
class MalformedFrame:
    """A frame that is not JSON text (binary, undecodable): handed to the protocol handler in
    place of a message, so it refuses it the way it refuses any malformed message."""

    reason: str


#: Message types that name an operation, by protocol (legacy graphql-ws, graphql-transport-ws).
_STARTS = {"subscribe", "start"}
_ENDS = {"complete", "stop"}


def message_problem(message: object) -> str | None:
    """Why `message` is not a well-formed protocol message, or None (both protocols)."""
    if isinstance(message, MalformedFrame):
        return message.reason
    if not isinstance(message, dict):
        return "A message must be a JSON object."
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message needs a string `type`."
    if kind in _STARTS | _ENDS and not isinstance(message.get("id"), str):
        return f"A `{kind}` message needs a string `id`."
    if kind in _STARTS:
        payload = message.get("payload")
        if isinstance(payload, dict) and payload.get("query") is None:
            return f"A `{kind}` message needs a `query`."
        return operation_problem(payload)
    return None


def close_reason(text: str) -> str:
    """`text` cut to what a close frame can carry."""
    encoded = text.encode()
    if len(encoded) <= _MAX_REASON:
        return text
    return encoded[: _MAX_REASON - 3].decode(errors="ignore") + "..."
