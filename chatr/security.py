"""Password hashing and token primitives; no database, no settings lookups."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chatr.errors import Unauthenticated

#: Pinned: a token whose header says anything else (including "none") is refused.
JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"
#: Proves the password was right while the second factor is still owed; never an access token.
TWO_FACTOR_CHALLENGE_TYPE = "2fa"
#: As long as a texted or mailed sign-in code lives: SMS can take a while to arrive.
TWO_FACTOR_CHALLENGE_TTL = 15 * 60

_hasher = PasswordHasher()
#: Verified against when the account does not exist, so login timing does not reveal it.
_DUMMY_HASH = _hasher.hash("not-a-real-password-for-timing")


async def hash_password(password: str) -> str:
    """Argon2 takes ~0.1 s of CPU by design; in a worker thread (argon2-cffi releases the
    GIL) so the event loop keeps serving everyone else meanwhile."""
    return await asyncio.to_thread(_hasher.hash, password)


def utf8(value: str) -> bytes:
    """Any client text as bytes, to hash or compare. A lone surrogate (JSON can carry one) has
    no UTF-8 form; kept as it is ("surrogatepass"), it cannot break a check, only fail it."""
    return value.encode("utf-8", "surrogatepass")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _hasher.verify(password_hash or _DUMMY_HASH, utf8(password))
            and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def successor_token(token: str, *, secret: str) -> str:
    """The refresh token that rotating `token` issues, derived rather than drawn.

    Derived (keyed with the server secret) so that `token` presented again moments later, by a
    second tab that raced the first, can be answered with the very same successor instead of
    a second one; nobody without `token` and the secret can compute it.
    """
    digest = hmac.new(utf8(secret), b"refresh-successor:" + utf8(token), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    """Refresh tokens and codes are stored hashed: a database leak does not leak sessions."""
    return hashlib.sha256(utf8(token)).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int
    expires_at: datetime
    #: A support-widget guest: only `chatr.services.guests.GUEST_ALLOWED` operations.
    guest: bool = False


def issue_access_token(
    *,
    secret: str,
    user_id: int,
    session_id: int,
    ttl_seconds: int,
    now: datetime | None = None,
    guest: bool = False,
) -> tuple[str, datetime]:
    """`guest` is signed into the token (an account's kind never changes), so the guest
    scope is known on every request without a database read."""
    now = now or datetime.now(UTC)
    expires_at = now + timedelta(seconds=ttl_seconds)
    payload: dict[str, object] = {
        "sub": str(user_id),
        "sid": str(session_id),
        "typ": ACCESS_TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    if guest:
        payload["gst"] = True
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM), expires_at


def decode_access_token(token: str, *, secret: str) -> AccessClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "sub", "sid", "typ"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise Unauthenticated("The access token has expired; refresh it.") from error
    except (jwt.PyJWTError, ValueError) as error:
        # ValueError: not even text (a lone surrogate from WebSocket connectionParams).
        raise Unauthenticated("The access token is invalid.") from error
    if payload.get("typ") != ACCESS_TOKEN_TYPE:
        raise Unauthenticated("The access token is invalid.")
    try:
        return AccessClaims(
            user_id=int(payload["sub"]),
            session_id=int(payload["sid"]),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            guest=payload.get("gst") is True,
        )
    except (TypeError, ValueError) as error:
        raise Unauthenticated("The access token is invalid.") from error


def bearer_token(header_value: str | None) -> str | None:
    """The token from an `Authorization: Bearer …` value, or None when absent."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <access token>'.")
    return token.strip()


def issue_two_factor_challenge(*, secret: str, user_id: int) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "typ": TWO_FACTOR_CHALLENGE_TYPE,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + TWO_FACTOR_CHALLENGE_TTL,
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


def decode_two_factor_challenge(token: str, *, secret: str) -> int:
    """The user id a challenge was issued to; UNAUTHENTICATED if forged, expired or not one."""
    try:
        payload = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "typ"]}
        )
        if payload["typ"] != TWO_FACTOR_CHALLENGE_TYPE:
            raise jwt.InvalidTokenError("not a two-factor challenge")
        return int(payload["sub"])
    except (jwt.PyJWTError, ValueError) as error:
        raise Unauthenticated(
            "The sign-in challenge is invalid or expired; log in again."
        ) from error


def sign_media_token(*, purpose: str, object_id: int, expires_at: int, secret: str) -> str:
    """A URL-safe bearer token for one upload or download of one stored object, until
    `expires_at` (epoch seconds): `<id>.<expiry>.<signature>`, keyed with the server secret
    and the purpose, so an upload token cannot be used to download and vice versa."""
    body = f"{object_id}.{expires_at}"
    digest = hmac.new(utf8(secret), utf8(f"media-{purpose}:{body}"), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")
    return f"{body}.{signature}"


def verify_media_token(token: str, *, purpose: str, secret: str, now: float) -> int | None:
    """The object id a `sign_media_token` token grants, or None if forged or expired."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    object_id, expires_at = int(parts[0]), int(parts[1])
    expected = sign_media_token(
        purpose=purpose, object_id=object_id, expires_at=expires_at, secret=secret
    )
    if not hmac.compare_digest(utf8(expected), utf8(token)) or expires_at < now:
        return None
    return object_id
