"""Proving an email address: a code is mailed at sign-up (and on request) and confirmed."""

from __future__ import annotations

from sqlalchemy import update

from chatr.errors import BadUserInput, NotFound
from chatr.infra import rate_limits
from chatr.models import User
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import verification


async def send_code(rt: Runtime, *, user_id: int, email: str) -> None:
    code = await verification.issue(rt, user_id=user_id, purpose=verification.EMAIL_VERIFICATION)
    rt.outbox.queue(
        to=email,
        subject="Your chatr verification code",
        body=f"Your chatr verification code is {code}. It expires in 15 minutes.",
    )


async def resend(rt: Runtime, *, viewer_id: int, client_ip: str) -> bool:
    await rt.limits.hit(rate_limits.RESEND_CODE, client_ip)
    async with rt.db.reader() as session:
        user = await session.get(User, viewer_id)
    if user is None:
        raise NotFound("No such user.")
    if not user.email:
        raise BadUserInput("This account has no email address.", field="email")
    if user.email_verified_at is not None:
        return False
    await send_code(rt, user_id=user.id, email=user.email)
    return True


async def verify(rt: Runtime, *, viewer_id: int, code: str) -> bool:
    await verification.consume(
        rt, user_id=viewer_id, purpose=verification.EMAIL_VERIFICATION, code=code
    )
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == viewer_id).values(email_verified_at=utcnow())
        )
    return True
