"""The address a request or WebSocket came from, as rate limits and socket caps count it.

Shared by the resolvers (rate limits per address) and the WebSocket handlers (sockets per
address), so it sits below both, with the context.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection


def client_ip(connection: HTTPConnection) -> str:
    """The TCP peer, or the client a trusted proxy named in X-Forwarded-For: `chatr serve`
    lets uvicorn believe that header only from CHATR_TRUSTED_PROXIES (chatr.cli)."""
    client = connection.client
    return client.host if client else "unknown"
