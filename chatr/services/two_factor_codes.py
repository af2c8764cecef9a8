"""Second factor by a code sent by SMS or email: choose it, switch or turn it off, sign in.

A user with a verified phone (or email) may have sign-in send a 6-digit code there instead of
asking for an authenticator code. The codes are `chatr.services.verification` codes: random,
15 minutes, single use, stored keyed-hashed, compared in constant time, five tries each.
Wrong codes also count toward the per-user TWO_FACTOR_FAILURES limit TOTP uses, so after six
the second step is locked for the window whichever factor is in use.

Turning the factor on only strengthens sign-in, so a verified channel is enough. Switching it
to the other channel or turning it off weakens it, so it takes a fresh code sent through the
current channel (`request_change_code`): a stolen session alone cannot do either.
"""

from __future__ import annotations

import enum

from sqlalchemy import update

from chatr import security
from chatr.errors import BadUserInput, Conflict, Unauthenticated
from chatr.infra import rate_limits
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import accounts, verification


class TwoFactorMethod(enum.StrEnum):
    """What `User.two_factor_method` holds when a second step is on."""

    TOTP = "TOTP"
    SMS = "SMS"
    EMAIL = "EMAIL"


class CodeMethod(enum.StrEnum):
    """The second factors that send a code (TOTP is turned on by enrolling an app)."""

    SMS = "SMS"
    EMAIL = "EMAIL"


SMS = CodeMethod.SMS.value
EMAIL = CodeMethod.EMAIL.value
METHODS = (SMS, EMAIL)


def uses_codes(user: User) -> bool:
    """Whether this user's second step is a code sent by SMS or email (not TOTP)."""
    return user.totp_secret is None and user.two_factor_method in METHODS


def _send(rt: Runtime, *, user: User, method: str, code: str, action: str) -> None:
    text = f"Your chatr {action} code is {code}. It expires in 15 minutes."
    if method == SMS and user.phone:
        rt.outbox.queue_sms(to=user.phone, body=text)
    elif method == EMAIL and user.email:
        rt.outbox.queue(
            to=user.email,
            subject=f"Your chatr {action} code",
            body=f"{text} If you did not ask for it, change your password.",
        )


async def _check(rt: Runtime, *, user: User, purpose: str, code: str) -> None:
    """Accept `code` once or BAD_USER_INPUT; RATE_LIMITED after six wrong ones in the window."""
    key = str(user.id)
    await rt.limits.check(rate_limits.TWO_FACTOR_FAILURES, key)
    try:
        await verification.consume(rt, user_id=user.id, purpose=purpose, code=code)
    except BadUserInput:
        await rt.limits.hit(rate_limits.TWO_FACTOR_FAILURES, key)
        raise


async def send_login_code(rt: Runtime, *, user: User) -> None:
    """Send the code for the second step of a login (any earlier one stops working)."""
    await rt.limits.hit(rate_limits.TWO_FACTOR_CODE_SENDS, str(user.id))
    code = await verification.issue(rt, user_id=user.id, purpose=verification.TWO_FACTOR_LOGIN)
    _send(rt, user=user, method=user.two_factor_method or "", code=code, action="sign-in")


async def verify_login_code(rt: Runtime, *, user: User, code: str) -> None:
    await _check(rt, user=user, purpose=verification.TWO_FACTOR_LOGIN, code=code)


async def resend_login_code(rt: Runtime, *, challenge: str, client_ip: str) -> bool:
    """A new code for a login that answered TWO_FACTOR_REQUIRED with SMS or EMAIL."""
    await rt.limits.hit(rate_limits.RESEND_CODE, client_ip)
    user_id = security.decode_two_factor_challenge(challenge, secret=rt.settings.jwt_secret)
    async with rt.db.reader() as session:
        user = await session.get(User, user_id)
    if user is None or user.suspended_at is not None or user.two_factor_method is None:
        raise Unauthenticated("The sign-in challenge is no longer valid; log in again.")
    if not uses_codes(user):
        raise BadUserInput(
            "This sign-in needs a code from your authenticator app; nothing is sent.",
            field="challenge",
        )
    await send_login_code(rt, user=user)
    return True


async def request_change_code(rt: Runtime, *, viewer_id: int, client_ip: str) -> bool:
    """Send a code through the current SMS/email factor, to confirm switching or disabling it."""
    await rt.limits.hit(rate_limits.RESEND_CODE, client_ip)
    user = await accounts.require(rt, viewer_id)
    if not uses_codes(user):
        raise BadUserInput("Sign-in codes by SMS or email are not on.", field="method")
    code = await verification.issue(rt, user_id=user.id, purpose=verification.TWO_FACTOR_CHANGE)
    _send(rt, user=user, method=user.two_factor_method or "", code=code, action="security")
    return True


def _require_channel(user: User, method: str) -> None:
    if method == SMS and (not user.phone or user.phone_verified_at is None):
        raise BadUserInput(
            "Verify a phone number first (setPhoneNumber, then verifyPhone).", field="method"
        )
    if method == EMAIL and (not user.email or user.email_verified_at is None):
        raise BadUserInput("Verify your email address first (verifyEmail).", field="method")


async def _store(rt: Runtime, *, user_id: int, method: str | None) -> None:
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == user_id).values(two_factor_method=method)
        )


async def set_method(rt: Runtime, *, viewer_id: int, method: str, code: str | None) -> bool:
    """Make sign-in send a code by `method`; switching from the other channel takes `code`."""
    if method not in METHODS:
        raise BadUserInput("The method must be SMS or EMAIL.", field="method")
    user = await accounts.require(rt, viewer_id)
    if user.totp_secret is not None:
        raise Conflict(
            "Sign-in uses an authenticator app; turn it off first (disableTotp).", field="method"
        )
    _require_channel(user, method)
    if user.two_factor_method == method:
        return True
    if uses_codes(user):
        if not code:
            raise BadUserInput("Switching needs the code from requestTwoFactorCode.", field="code")
        await _check(rt, user=user, purpose=verification.TWO_FACTOR_CHANGE, code=code)
    await _store(rt, user_id=viewer_id, method=method)
    return True


async def disable(rt: Runtime, *, viewer_id: int, code: str) -> bool:
    """Turn sign-in codes off; takes a fresh code from `request_change_code`."""
    user = await accounts.require(rt, viewer_id)
    if not uses_codes(user):
        raise BadUserInput("Sign-in codes by SMS or email are not on.", field="code")
    await _check(rt, user=user, purpose=verification.TWO_FACTOR_CHANGE, code=code)
    await _store(rt, user_id=viewer_id, method=None)
    return True
