"""TOTP second factor: enrol, confirm, disable, and the check login relies on.

Codes are accepted one 30-second step either side of now (clock drift), compared in
constant time, and each time step can be used once: the last accepted step is stored and a
code for it or any earlier step is refused, so a code seen over someone's shoulder is
worthless once used. Wrong codes count per user; after six the user is locked out for the
rest of the 15-minute window.
"""

from __future__ import annotations

import base64
import hmac
import io
import time
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy import or_, update

from chatr import security
from chatr.db import rows_changed
from chatr.errors import BadUserInput, Conflict
from chatr.infra import rate_limits
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import accounts

ISSUER = "chatr"
METHOD = "TOTP"
DRIFT_STEPS = 1


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    otpauth_uri: str
    qr_code_png: str  # data URL


def _qr_data_url(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=5, border=2)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _matching_step(secret: str, code: str, now: float) -> int | None:
    totp = pyotp.TOTP(secret)
    current = int(now // totp.interval)  # the RFC 6238 time step
    # As bytes: compare_digest refuses str with anything but ASCII, and a code can hold anything.
    candidate = security.utf8(code.strip())
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), candidate):
            return step
    return None


async def verify_code(rt: Runtime, *, user: User, secret: str, code: str) -> None:
    """Accept `code` for `user` once, or BAD_USER_INPUT; RATE_LIMITED after six wrong ones."""
    key = str(user.id)
    await rt.limits.check(rate_limits.TWO_FACTOR_FAILURES, key)
    step = _matching_step(secret, code, time.time())
    used = False
    if step is not None:
        # Record the step only if it is newer than the last one used: the replay guard,
        # race-free because the comparison is in the UPDATE itself.
        async with rt.db.session() as session, session.begin():
            used = (
                await rows_changed(
                    session,
                    update(User)
                    .where(
                        User.id == user.id,
                        or_(User.totp_last_step.is_(None), User.totp_last_step < step),
                    )
                    .values(totp_last_step=step),
                )
                == 1
            )
    if not used:
        await rt.limits.hit(rate_limits.TWO_FACTOR_FAILURES, key)
        raise BadUserInput("That code is wrong or was already used.", field="code")


async def enroll(rt: Runtime, *, viewer_id: int) -> TotpEnrolment:
    """Start enrolment: a new secret to scan; 2FA is on only after `confirm`."""
    user = await accounts.require(rt, viewer_id)
    if user.totp_secret is not None or user.two_factor_method is not None:
        # Replacing SMS/email codes must not skip the code their removal takes.
        raise Conflict("Two-factor authentication is already on; disable it first.")
    secret = pyotp.random_base32()
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == viewer_id).values(pending_totp_secret=secret)
        )
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_code_png=_qr_data_url(uri))


async def confirm(rt: Runtime, *, viewer_id: int, code: str) -> bool:
    user = await accounts.require(rt, viewer_id)
    if user.pending_totp_secret is None:
        raise BadUserInput("Start with enrollTotp.", field="code")
    await verify_code(rt, user=user, secret=user.pending_totp_secret, code=code)
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User)
            .where(User.id == viewer_id)
            .values(
                totp_secret=user.pending_totp_secret,
                pending_totp_secret=None,
                two_factor_method=METHOD,
            )
        )
    return True


async def disable(rt: Runtime, *, viewer_id: int, code: str) -> bool:
    """Turn 2FA off; it takes a current code, so a stolen session alone cannot do it."""
    user = await accounts.require(rt, viewer_id)
    if user.totp_secret is None:
        raise BadUserInput("Two-factor authentication is not on.", field="code")
    await verify_code(rt, user=user, secret=user.totp_secret, code=code)
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User)
            .where(User.id == viewer_id)
            .values(totp_secret=None, pending_totp_secret=None, two_factor_method=None)
        )
    return True
