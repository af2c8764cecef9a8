"""Short numeric codes sent by email (or SMS): verification, password reset.

Codes are random, 6 digits, valid 15 minutes, stored only as a keyed hash, compared in
constant time, and allow a few attempts before the code is dead: guessing one in a million
with five tries is hopeless, and asking for a new code is itself rate-limited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from chatr import security
from chatr.errors import BadUserInput
from chatr.models import VerificationCode
from chatr.models.base import utcnow
from chatr.runtime import Runtime

CODE_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
EMAIL_VERIFICATION = "email_verification"
PHONE_VERIFICATION = "phone_verification"
PASSWORD_RESET = "password_reset"
#: The second step of a login whose second factor is a code by SMS or email.
TWO_FACTOR_LOGIN = "two_factor_login"
#: Proof of the current SMS/email second factor before it is switched or turned off.
TWO_FACTOR_CHANGE = "two_factor_change"


def _digest(rt: Runtime, *, user_id: int, purpose: str, code: str) -> str:
    # Keyed with the server secret: a leaked table cannot be brute-forced offline.
    key = rt.settings.jwt_secret.encode()
    message = security.utf8(f"{purpose}:{user_id}:{code}")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def issue(rt: Runtime, *, user_id: int, purpose: str) -> str:
    """A new code for (user, purpose); any earlier one stops working."""
    code = f"{secrets.randbelow(1_000_000):06d}"
    now = utcnow()
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(VerificationCode)
            .where(
                VerificationCode.user_id == user_id,
                VerificationCode.purpose == purpose,
                VerificationCode.consumed_at.is_(None),
            )
            .values(consumed_at=now)
        )
        session.add(
            VerificationCode(
                user_id=user_id,
                purpose=purpose,
                code_hash=_digest(rt, user_id=user_id, purpose=purpose, code=code),
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        )
    return code


async def consume(rt: Runtime, *, user_id: int, purpose: str, code: str) -> None:
    """Accept `code` once, or BAD_USER_INPUT (wrong, expired, used, or out of attempts)."""
    invalid = BadUserInput("The code is wrong or has expired; request a new one.", field="code")
    now = utcnow()
    async with rt.db.session() as session:
        current = await session.scalar(
            select(VerificationCode)
            .where(
                VerificationCode.user_id == user_id,
                VerificationCode.purpose == purpose,
                VerificationCode.consumed_at.is_(None),
            )
            .order_by(VerificationCode.id.desc())
            .limit(1)
            .with_for_update()
        )
        if current is None or current.expires_at <= now or current.attempts >= MAX_ATTEMPTS:
            raise invalid
        # The attempt counts whether or not it matches, so it is committed either way.
        current.attempts += 1
        expected = _digest(rt, user_id=user_id, purpose=purpose, code=code.strip())
        matched = hmac.compare_digest(current.code_hash, expected)
        if matched:
            current.consumed_at = now
        await session.commit()
    if not matched:
        raise invalid
