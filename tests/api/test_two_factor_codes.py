"""A second sign-in step by a code sent by SMS or email, read from real SMS and SMTP sinks."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from sqlalchemy import update

from chatr.models import VerificationCode
from chatr.models.base import utcnow
from chatr.services import verification
from tests.support.api import (
    LOGIN,
    ME,
    ME_VERIFICATION,
    PASSWORD,
    SET_PHONE,
    VERIFY_EMAIL,
    VERIFY_PHONE,
    Account,
    GraphQLError,
    data,
    graphql,
    register,
    register_with_phone,
)
from tests.support.servers import RunningApp
from tests.support.sms_sink import SmsSink
from tests.support.smtp_sink import SmtpSink

SET_METHOD = """
mutation M($method: TwoFactorCodeMethod!, $code: String) {
  setTwoFactorMethod(method: $method, code: $code) { id twoFactorEnabled twoFactorMethod }
}
"""
REQUEST_CODE = "mutation { requestTwoFactorCode }"
DISABLE = "mutation D($code: String!) { disableTwoFactorCodes(code: $code) { twoFactorEnabled } }"
VERIFY_LOGIN = """
mutation T($challenge: String!, $code: String!) {
  verifyTwoFactorLogin(challenge: $challenge, code: $code) {
    accessToken refreshToken user { username }
  }
}
"""
RESEND_LOGIN_CODE = """
mutation R($challenge: String!) { resendTwoFactorLoginCode(challenge: $challenge) }
"""
ENROLL_TOTP = "mutation { enrollTotp { secret } }"
CONFIRM_TOTP = "mutation C($code: String!) { confirmTotp(code: $code) { twoFactorEnabled } }"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _login_challenge(app: RunningApp, username: str) -> dict[str, Any]:
    """Log in with the password; the TWO_FACTOR_REQUIRED error's extensions."""
    body = await graphql(app.http, LOGIN, {"input": {"login": username, "password": PASSWORD}})
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "TWO_FACTOR_REQUIRED"
    return error["extensions"]


async def _finish(app: RunningApp, challenge: str, code: str) -> dict[str, Any]:
    result = await data(app.http, VERIFY_LOGIN, {"challenge": challenge, "code": code})
    return result["verifyTwoFactorLogin"]


async def _sms_user(app: RunningApp, sms: SmsSink, username: str, phone: str) -> Account:
    """An account with a verified phone whose sign-in sends a code by SMS."""
    account = await register_with_phone(app.http, username, phone)
    await account.call(VERIFY_PHONE, code=await sms.next_code(phone))
    chosen = (await account.call(SET_METHOD, method="SMS"))["setTwoFactorMethod"]
    assert chosen == {"id": account.id, "twoFactorEnabled": True, "twoFactorMethod": "SMS"}
    return account


@pytest.mark.smoke
async def test_sms_second_factor_from_sign_up_to_tokens(code_app: RunningApp, sms: SmsSink) -> None:
    # given nora signed up with a phone, verified it and chose codes by SMS
    phone = "+15551240001"
    nora = await register_with_phone(code_app.http, "nora", phone)
    await nora.call(VERIFY_PHONE, code=await sms.next_code(phone))
    await nora.call(SET_METHOD, method="SMS")
    assert (await nora.call(ME_VERIFICATION))["me"] == {
        "emailVerified": False,
        "phoneVerified": True,
        "twoFactorEnabled": True,
        "twoFactorMethod": "SMS",
    }
    # when she logs in with her password
    challenge = await _login_challenge(code_app, "nora")
    # then she is asked for the code texted to her phone, and it finishes the login
    assert challenge["method"] == "SMS"
    code = await sms.next_code(phone, after=1)
    tokens = await _finish(code_app, challenge["challenge"], code)
    assert (await data(code_app.http, ME, token=tokens["accessToken"]))["me"]["username"] == "nora"


async def test_email_second_factor_from_sign_up_to_tokens(
    code_app: RunningApp, smtp: SmtpSink
) -> None:
    # given omar verified his address and chose codes by email
    omar = await register(code_app.http, "omar")
    await omar.call(VERIFY_EMAIL, code=await smtp.next_code("omar@example.com"))
    chosen = (await omar.call(SET_METHOD, method="EMAIL"))["setTwoFactorMethod"]
    assert chosen["twoFactorMethod"] == "EMAIL"
    # when he logs in
    challenge = await _login_challenge(code_app, "omar")
    # then the mailed code finishes it
    assert challenge["method"] == "EMAIL"
    code = await smtp.next_code("omar@example.com", after=1)
    tokens = await _finish(code_app, challenge["challenge"], code)
    assert tokens["user"]["username"] == "omar"


async def test_a_login_code_works_once(code_app: RunningApp, sms: SmsSink) -> None:
    phone = "+15551240002"
    await _sms_user(code_app, sms, "once", phone)
    first = await _login_challenge(code_app, "once")
    code = await sms.next_code(phone, after=1)
    await _finish(code_app, first["challenge"], code)
    # when the same code is replayed, with the same or with a fresh challenge
    with pytest.raises(GraphQLError) as same_challenge:
        await _finish(code_app, first["challenge"], code)
    assert same_challenge.value.codes == ["BAD_USER_INPUT"]
    second = await _login_challenge(code_app, "once")
    with pytest.raises(GraphQLError) as fresh_challenge:
        await _finish(code_app, second["challenge"], code)
    assert fresh_challenge.value.codes == ["BAD_USER_INPUT"]
    # and only the code texted for the new login works
    new_code = await sms.next_code(phone, after=2)
    assert (await _finish(code_app, second["challenge"], new_code))["user"]["username"] == "once"


async def test_an_expired_login_code_is_refused(code_app: RunningApp, sms: SmsSink) -> None:
    phone = "+15551240003"
    await _sms_user(code_app, sms, "slow", phone)
    challenge = await _login_challenge(code_app, "slow")
    code = await sms.next_code(phone, after=1)
    async with code_app.runtime.db.session() as session, session.begin():
        await session.execute(
            update(VerificationCode)
            .where(VerificationCode.purpose == verification.TWO_FACTOR_LOGIN)
            .values(expires_at=utcnow())
        )
    with pytest.raises(GraphQLError) as expired:
        await _finish(code_app, challenge["challenge"], code)
    assert expired.value.codes == ["BAD_USER_INPUT"]


async def test_six_wrong_login_codes_lock_further_attempts_for_the_window(
    limited_code_app: RunningApp, sms: SmsSink
) -> None:
    phone = "+15551240004"
    await _sms_user(limited_code_app, sms, "locked", phone)
    challenge = (await _login_challenge(limited_code_app, "locked"))["challenge"]
    code = await sms.next_code(phone, after=1)
    for _ in range(6):
        with pytest.raises(GraphQLError) as failure:
            await _finish(limited_code_app, challenge, _wrong(code))
        assert failure.value.codes == ["BAD_USER_INPUT"]
    body = await graphql(
        limited_code_app.http, VERIFY_LOGIN, {"challenge": challenge, "code": code}
    )
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert body["errors"][0]["extensions"]["retryAfter"] > 0


async def test_resending_the_login_code_retires_the_first_one(
    code_app: RunningApp, sms: SmsSink
) -> None:
    phone = "+15551240005"
    await _sms_user(code_app, sms, "resender", phone)
    challenge = (await _login_challenge(code_app, "resender"))["challenge"]
    first = await sms.next_code(phone, after=1)
    resent = await data(code_app.http, RESEND_LOGIN_CODE, {"challenge": challenge})
    assert resent == {"resendTwoFactorLoginCode": True}
    second = await sms.next_code(phone, after=2)
    if first != second:
        with pytest.raises(GraphQLError) as retired:
            await _finish(code_app, challenge, first)
        assert retired.value.codes == ["BAD_USER_INPUT"]
    assert (await _finish(code_app, challenge, second))["user"]["username"] == "resender"


async def test_resending_login_codes_is_rate_limited(
    limited_code_app: RunningApp, sms: SmsSink
) -> None:
    await _sms_user(limited_code_app, sms, "spammy", "+15551240006")
    challenge = (await _login_challenge(limited_code_app, "spammy"))["challenge"]
    for _ in range(3):
        await data(limited_code_app.http, RESEND_LOGIN_CODE, {"challenge": challenge})
    body = await graphql(limited_code_app.http, RESEND_LOGIN_CODE, {"challenge": challenge})
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_a_forged_challenge_gets_no_code(code_app: RunningApp, sms: SmsSink) -> None:
    with pytest.raises(GraphQLError) as forged:
        await data(code_app.http, RESEND_LOGIN_CODE, {"challenge": "not.a.challenge"})
    assert forged.value.codes == ["UNAUTHENTICATED"]
    assert sms.attempts == 0


async def test_choosing_a_channel_that_is_not_verified_is_refused(
    code_app: RunningApp, sms: SmsSink
) -> None:
    # no phone at all, then an unverified phone: SMS is refused; the email is unverified too
    bob = await register(code_app.http, "unproven")
    for method in ("SMS", "EMAIL"):
        with pytest.raises(GraphQLError) as refused:
            await bob.call(SET_METHOD, method=method)
        assert refused.value.codes == ["BAD_USER_INPUT"]
        assert refused.value.errors[0]["extensions"]["field"] == "method"
    await bob.call(SET_PHONE, phone="+15551240007")
    with pytest.raises(GraphQLError) as unverified:
        await bob.call(SET_METHOD, method="SMS")
    assert unverified.value.codes == ["BAD_USER_INPUT"]
    # and login stays password-only
    login = await data(code_app.http, LOGIN, {"input": {"login": "unproven", "password": PASSWORD}})
    assert login["login"]["user"]["username"] == "unproven"


async def test_turning_codes_off_takes_a_fresh_code_from_the_current_channel(
    code_app: RunningApp, sms: SmsSink
) -> None:
    phone = "+15551240008"
    alice = await _sms_user(code_app, sms, "optout", phone)
    # a stolen session alone cannot: no code has been sent, so any code is wrong
    with pytest.raises(GraphQLError) as guessed:
        await alice.call(DISABLE, code="123456")
    assert guessed.value.codes == ["BAD_USER_INPUT"]
    assert (await alice.call(ME_VERIFICATION))["me"]["twoFactorMethod"] == "SMS"
    # the owner asks for a code, which is texted to the verified phone
    assert (await alice.call(REQUEST_CODE))["requestTwoFactorCode"] is True
    code = await sms.next_code(phone, after=1)
    with pytest.raises(GraphQLError) as wrong:
        await alice.call(DISABLE, code=_wrong(code))
    assert wrong.value.codes == ["BAD_USER_INPUT"]
    assert (await alice.call(DISABLE, code=code))["disableTwoFactorCodes"] == {
        "twoFactorEnabled": False
    }
    # then login is password-only again
    assert (await alice.call(ME_VERIFICATION))["me"]["twoFactorEnabled"] is False
    login = await data(code_app.http, LOGIN, {"input": {"login": "optout", "password": PASSWORD}})
    assert login["login"]["user"]["username"] == "optout"


async def test_switching_from_sms_to_email_takes_a_code_from_the_phone(
    code_app: RunningApp, sms: SmsSink, smtp: SmtpSink
) -> None:
    phone = "+15551240009"
    alice = await _sms_user(code_app, sms, "switcher", phone)
    await alice.call(VERIFY_EMAIL, code=await smtp.next_code("switcher@example.com"))
    with pytest.raises(GraphQLError) as without_code:
        await alice.call(SET_METHOD, method="EMAIL")
    assert without_code.value.codes == ["BAD_USER_INPUT"]
    await alice.call(REQUEST_CODE)
    code = await sms.next_code(phone, after=1)
    switched = (await alice.call(SET_METHOD, method="EMAIL", code=code))["setTwoFactorMethod"]
    assert switched["twoFactorMethod"] == "EMAIL"
    challenge = await _login_challenge(code_app, "switcher")
    assert challenge["method"] == "EMAIL"


async def test_the_phone_cannot_change_while_sign_in_codes_go_to_it(
    code_app: RunningApp, sms: SmsSink
) -> None:
    alice = await _sms_user(code_app, sms, "anchored", "+15551240010")
    with pytest.raises(GraphQLError) as refused:
        await alice.call(SET_PHONE, phone="+15551240011")
    assert refused.value.codes == ["CONFLICT"]
    assert (await alice.call(ME_VERIFICATION))["me"]["phoneVerified"] is True
    assert sms.texts_to("+15551240011") == []


async def test_an_authenticator_app_and_sign_in_codes_do_not_replace_each_other_silently(
    code_app: RunningApp, sms: SmsSink
) -> None:
    # codes by SMS are on: enrolling an authenticator app would skip the code removal takes
    alice = await _sms_user(code_app, sms, "layered", "+15551240012")
    with pytest.raises(GraphQLError) as enroll:
        await alice.call(ENROLL_TOTP)
    assert enroll.value.codes == ["CONFLICT"]
    # an authenticator app is on: choosing codes instead is refused too
    bob = await register_with_phone(code_app.http, "apper", "+15551240013")
    await bob.call(VERIFY_PHONE, code=await sms.next_code("+15551240013"))
    secret = (await bob.call(ENROLL_TOTP))["enrollTotp"]["secret"]
    await bob.call(CONFIRM_TOTP, code=pyotp.TOTP(secret).now())
    with pytest.raises(GraphQLError) as choose:
        await bob.call(SET_METHOD, method="SMS")
    assert choose.value.codes == ["CONFLICT"]
    assert (await bob.call(ME_VERIFICATION))["me"]["twoFactorMethod"] == "TOTP"
    challenge = await _login_challenge(code_app, "apper")
    assert challenge["method"] == "TOTP"
    with pytest.raises(GraphQLError) as nothing_to_send:
        await data(code_app.http, RESEND_LOGIN_CODE, {"challenge": challenge["challenge"]})
    assert nothing_to_send.value.codes == ["BAD_USER_INPUT"]


async def test_second_factor_mutations_need_a_login(code_app: RunningApp) -> None:
    for document, variables in (
        (SET_METHOD, {"method": "SMS"}),
        (REQUEST_CODE, {}),
        (DISABLE, {"code": "123456"}),
        (SET_PHONE, {"phone": "+15551240014"}),
        (VERIFY_PHONE, {"code": "123456"}),
    ):
        with pytest.raises(GraphQLError) as failure:
            await data(code_app.http, document, variables)
        assert failure.value.codes == ["UNAUTHENTICATED"]
