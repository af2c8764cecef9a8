"""Access tokens that must be refused: expired, forged, unsigned, or of the wrong kind."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.support.api import ME, GraphQLError, data, register
from tests.support.ids import pk
from tests.support.servers import RunningApp


def _b64(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _claims(user_id: str, *, exp_offset: int = 600) -> dict[str, object]:
    """A token's claims for the user with this (global) id: `sub` is the account's key."""
    now = int(time.time())
    return {
        "sub": str(pk(user_id)),
        "sid": "1",
        "typ": "access",
        "iat": now,
        "exp": now + exp_offset,
    }


async def _code_for(app: RunningApp, token: str) -> list[str]:
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, ME, token=token)
    return failure.value.codes


async def test_expired_token_is_unauthenticated(app: RunningApp) -> None:
    alice = await register(app.http)
    secret = app.runtime.settings.jwt_secret
    expired = jwt.encode(_claims(alice.id, exp_offset=-10), secret, algorithm="HS256")
    assert await _code_for(app, expired) == ["UNAUTHENTICATED"]


async def test_token_signed_with_another_key_is_unauthenticated(app: RunningApp) -> None:
    alice = await register(app.http)
    forged = jwt.encode(_claims(alice.id), "x" * 48, algorithm="HS256")
    assert await _code_for(app, forged) == ["UNAUTHENTICATED"]


async def test_unsigned_alg_none_token_is_unauthenticated(app: RunningApp) -> None:
    alice = await register(app.http)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(alice.id))}."
    assert await _code_for(app, unsigned) == ["UNAUTHENTICATED"]


async def test_token_for_a_session_of_another_user_is_unauthenticated(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    secret = app.runtime.settings.jwt_secret
    # alice's session id (1) combined with bob's user id: correctly signed, wrong pairing
    crossed = jwt.encode(_claims(bob.id), secret, algorithm="HS256")
    assert pk(alice.id) == 1
    assert await _code_for(app, crossed) == ["UNAUTHENTICATED"]


async def test_malformed_authorization_header_is_unauthenticated(app: RunningApp) -> None:
    response = await app.http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Token abc"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
