"""Forgotten passwords: a code by email, then a new password that ends every session."""

from __future__ import annotations

from functools import partial

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from chatr import security
from chatr.errors import BadUserInput
from chatr.infra import rate_limits
from chatr.infra.delivery import DeliveryFailed
from chatr.infra.outbox import Delivery
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import auth, users, validation, verification


async def request(rt: Runtime, *, email: str, client_ip: str) -> bool:
    """Mail a reset code if the account exists. The answer is the same either way, and so is
    the work on the request path: one rate-limit hit and one job queued on the outbox. Looking
    the address up, issuing the code and mailing it all happen in that job, off the request
    path; otherwise the extra database writes for a real address (tens of milliseconds) would
    tell anyone timing the answer who has an account."""
    await rt.limits.hit(rate_limits.PASSWORD_RESET, client_ip)
    rt.outbox.submit(Delivery(RESET_JOB, email, partial(_mail_code_if_registered, rt, email)))
    return True


#: The id an unknown address's code is looked up under: ids start at 1.
NO_ACCOUNT = 0

#: The outbox channel name of the job above (for its log lines).
RESET_JOB = "password-reset"


async def _mail_code_if_registered(rt: Runtime, email: str) -> None:
    """The outbox job: the code and its mail, for a registered, active account only."""
    try:
        async with rt.db.reader() as session:
            user = await users.find_by_login(session, login=email)
        if user is None or not user.email or user.suspended_at is not None or "@" not in email:
            return
        code = await verification.issue(rt, user_id=user.id, purpose=verification.PASSWORD_RESET)
    except SQLAlchemyError as error:
        # Retried by the outbox like a mail server that did not answer.
        raise DeliveryFailed(f"password reset for {email!r}: {error}") from error
    rt.outbox.queue(
        to=user.email,
        subject="Reset your chatr password",
        body=f"Your chatr password reset code is {code}. It expires in 15 minutes. "
        "If you did not ask for it, ignore this mail: your password stays as it is.",
    )


async def reset(rt: Runtime, *, email: str, code: str, new_password: str) -> bool:
    new_password = validation.password(new_password)
    async with rt.db.reader() as session:
        user = await users.find_by_login(session, login=email)
    # An unknown address looks for its code like a known one (under an id no account has),
    # so the answer and the statements it took are those of a known address with no pending
    # code: nothing here says whether the address is registered.
    registered = user is not None and "@" in email
    await verification.consume(
        rt,
        user_id=user.id if registered and user is not None else NO_ACCOUNT,
        purpose=verification.PASSWORD_RESET,
        code=code,
    )
    if not registered or user is None:  # consume found no code for NO_ACCOUNT and raised
        raise BadUserInput("The code is wrong or has expired; request a new one.", field="code")
    password_hash = await security.hash_password(new_password)
    async with rt.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == user.id).values(password_hash=password_hash)
        )
    await auth.revoke_all_sessions(rt, user_id=user.id, reason="password_reset")
    # Whoever proved the mailbox is the owner: a lock from someone else's guessing ends here.
    await rt.limits.clear(rate_limits.LOGIN_ACCOUNT, auth.account_lock_key(user.id))
    return True
