"""Email verification and password reset, with codes read from a real SMTP sink."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from chatr.models import VerificationCode
from chatr.models.base import utcnow
from tests.support.api import LOGIN, ME, PASSWORD, GraphQLError, data, register
from tests.support.servers import RunningApp
from tests.support.smtp_sink import SmtpSink

VERIFY = "mutation V($code: String!) { verifyEmail(code: $code) { id emailVerified } }"
RESEND = "mutation { resendEmailVerification }"
ME_VERIFIED = "query { me { emailVerified } }"
REQUEST_RESET = "mutation R($email: String!) { requestPasswordReset(email: $email) }"
RESET = """
mutation Reset($email: String!, $code: String!, $password: String!) {
  resetPassword(email: $email, code: $code, newPassword: $password)
}
"""
NEW_PASSWORD = "Brand-new-pass2"


@pytest.mark.smoke
async def test_sign_up_mails_a_code_that_verifies_the_address(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    # given a new account (its code is mailed in the background)
    alice = await register(mail_app.http, "alice")
    assert (await alice.call(ME_VERIFIED))["me"]["emailVerified"] is False
    # when she enters the code from the mail
    code = await smtp.next_code("alice@example.com")
    assert (await alice.call(VERIFY, code=code))["verifyEmail"] == {
        "id": alice.id,
        "emailVerified": True,
    }
    # then the address is verified and the code cannot be used again
    assert (await alice.call(ME_VERIFIED))["me"]["emailVerified"] is True
    with pytest.raises(GraphQLError) as reuse:
        await alice.call(VERIFY, code=code)
    assert reuse.value.codes == ["BAD_USER_INPUT"]


async def test_a_wrong_code_is_refused_and_five_wrong_codes_kill_the_right_one(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    alice = await register(mail_app.http, "guesser")
    code = await smtp.next_code("guesser@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        with pytest.raises(GraphQLError) as failure:
            await alice.call(VERIFY, code=wrong)
        assert failure.value.codes == ["BAD_USER_INPUT"]
    with pytest.raises(GraphQLError) as exhausted:
        await alice.call(VERIFY, code=code)
    assert exhausted.value.codes == ["BAD_USER_INPUT"]
    assert (await alice.call(ME_VERIFIED))["me"]["emailVerified"] is False


async def test_an_expired_code_is_refused(mail_app: RunningApp, smtp: SmtpSink) -> None:
    alice = await register(mail_app.http, "late")
    code = await smtp.next_code("late@example.com")
    async with mail_app.runtime.db.session() as session, session.begin():
        await session.execute(update(VerificationCode).values(expires_at=utcnow()))
    with pytest.raises(GraphQLError) as failure:
        await alice.call(VERIFY, code=code)
    assert failure.value.codes == ["BAD_USER_INPUT"]


async def test_resending_mails_a_new_code_and_retires_the_old_one(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    alice = await register(mail_app.http, "again")
    first = await smtp.next_code("again@example.com")
    assert (await alice.call(RESEND))["resendEmailVerification"] is True
    second = await smtp.next_code("again@example.com", after=1)
    if first != second:
        with pytest.raises(GraphQLError):
            await alice.call(VERIFY, code=first)
    assert (await alice.call(VERIFY, code=second))["verifyEmail"]["emailVerified"] is True


@pytest.mark.smoke
async def test_password_reset_by_mailed_code_changes_the_password_and_ends_every_session(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    # given alice signed in somewhere
    alice = await register(mail_app.http, "forgetful")
    # when she asks for a reset and uses the mailed code
    await data(mail_app.http, REQUEST_RESET, {"email": "Forgetful@example.com"})
    code = await smtp.next_code("forgetful@example.com", after=1)  # after the sign-up mail
    result = await data(
        mail_app.http,
        RESET,
        {"email": "forgetful@example.com", "code": code, "password": NEW_PASSWORD},
    )
    assert result["resetPassword"] is True
    # then the old session is over, the old password fails and the new one works
    with pytest.raises(GraphQLError) as old_session:
        await alice.call(ME)
    assert old_session.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as old_password:
        await data(mail_app.http, LOGIN, {"input": {"login": "forgetful", "password": PASSWORD}})
    assert old_password.value.codes == ["UNAUTHENTICATED"]
    login = await data(
        mail_app.http, LOGIN, {"input": {"login": "forgetful", "password": NEW_PASSWORD}}
    )
    assert login["login"]["user"]["username"] == "forgetful"


async def test_reset_request_answers_the_same_for_unknown_addresses_and_mails_nothing(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    await register(mail_app.http, "known")
    await smtp.next_code("known@example.com")
    unknown = await data(mail_app.http, REQUEST_RESET, {"email": "nobody@example.com"})
    known = await data(mail_app.http, REQUEST_RESET, {"email": "known@example.com"})
    assert unknown == known == {"requestPasswordReset": True}
    await smtp.next_code("known@example.com", after=1)
    await asyncio.sleep(0.2)
    assert smtp.mail_to("nobody@example.com") == []


async def test_reset_with_a_wrong_code_keeps_the_old_password(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    await register(mail_app.http, "steady")
    await data(mail_app.http, REQUEST_RESET, {"email": "steady@example.com"})
    code = await smtp.next_code("steady@example.com", after=1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(GraphQLError) as failure:
        await data(
            mail_app.http,
            RESET,
            {"email": "steady@example.com", "code": wrong, "password": NEW_PASSWORD},
        )
    assert failure.value.codes == ["BAD_USER_INPUT"]
    with pytest.raises(GraphQLError) as unknown:
        await data(
            mail_app.http,
            RESET,
            {"email": "ghost@example.com", "code": code, "password": NEW_PASSWORD},
        )
    assert unknown.value.codes == ["BAD_USER_INPUT"]
    login = await data(mail_app.http, LOGIN, {"input": {"login": "steady", "password": PASSWORD}})
    assert login["login"]["user"]["username"] == "steady"


async def test_reset_needs_a_password_that_follows_the_rules(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    await register(mail_app.http, "weak")
    await data(mail_app.http, REQUEST_RESET, {"email": "weak@example.com"})
    code = await smtp.next_code("weak@example.com", after=1)
    with pytest.raises(GraphQLError) as failure:
        await data(
            mail_app.http, RESET, {"email": "weak@example.com", "code": code, "password": "short"}
        )
    assert failure.value.codes == ["BAD_USER_INPUT"]
