"""Proving a phone number: a code by SMS at sign-up, on request, and when the number changes."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from chatr.errors import BadUserInput, Conflict
from chatr.infra import rate_limits
from chatr.models import User
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import accounts, validation, verification
from chatr.services.two_factor_codes import SMS


async def send_code(rt: Runtime, *, user_id: int, phone: str) -> None:
    code = await verification.issue(rt, user_id=user_id, purpose=verification.PHONE_VERIFICATION)
    rt.outbox.queue_sms(
        to=phone, body=f"Your chatr verification code is {code}. It expires in 15 minutes."
    )


async def resend(rt: Runtime, *, viewer_id: int, client_ip: str) -> bool:
    """Text a new code (the old one stops working); False when the number is verified."""
    await rt.limits.hit(rate_limits.RESEND_CODE, client_ip)
    user = await accounts.require(rt, viewer_id)
    if not user.phone:
        raise BadUserInput("This account has no phone number; set one first.", field="phone")
    if user.phone_verified_at is not None:
        return False
    await send_code(rt, user_id=user.id, phone=user.phone)
    return True


async def verify(rt: Runtime, *, viewer_id: int, code: str) -> bool:
    await verification.consume(
        rt, user_id=viewer_id, purpose=verification.PHONE_VERIFICATION, code=code
    )
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == viewer_id).values(phone_verified_at=utcnow())
        )
    return True


async def set_number(rt: Runtime, *, viewer_id: int, phone: str, client_ip: str) -> bool:
    """Add or change the viewer's number: it is unverified until the texted code comes back.

    False (and no text) when it is already the viewer's verified number. While sign-in codes
    go by SMS the number cannot change: that would hand the second factor to whoever holds
    the session; the SMS factor must be turned off first, which takes a code.
    """
    await rt.limits.hit(rate_limits.RESEND_CODE, client_ip)
    phone = validation.phone(phone)
    user = await accounts.require(rt, viewer_id)
    if user.phone == phone and user.phone_verified_at is not None:
        return False
    if user.two_factor_method == SMS:
        raise Conflict(
            "Sign-in codes go to your current number; turn them off before changing it.",
            field="phone",
        )
    taken = Conflict("That phone number belongs to another account.", field="phone")
    async with rt.db.session() as session, session.begin():
        if await session.scalar(select(User.id).where(User.phone == phone, User.id != viewer_id)):
            raise taken
        try:
            await session.execute(
                update(User).where(User.id == viewer_id).values(phone=phone, phone_verified_at=None)
            )
        except IntegrityError as error:  # a concurrent change won the race
            raise taken from error
    await send_code(rt, user_id=viewer_id, phone=phone)
    return True
