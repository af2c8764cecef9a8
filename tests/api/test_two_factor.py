"""TOTP two-factor sign-in: enrol, confirm, log in with a code, replay guard, lockout."""

from __future__ import annotations

import base64
import time
from typing import Any

import pyotp
import pytest

from tests.support.api import LOGIN, ME, PASSWORD, Account, GraphQLError, data, graphql, register
from tests.support.servers import RunningApp

ENROLL = "mutation { enrollTotp { secret otpauthUri qrCodePng } }"
CONFIRM = "mutation C($code: String!) { confirmTotp(code: $code) { id twoFactorEnabled } }"
DISABLE = "mutation D($code: String!) { disableTotp(code: $code) { id twoFactorEnabled } }"
VERIFY_LOGIN = """
mutation V($challenge: String!, $code: String!) {
  verifyTwoFactorLogin(challenge: $challenge, code: $code) { accessToken user { username } }
}
"""
ME_2FA = "query { me { twoFactorEnabled } }"


def _code(secret: str, *, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def _wrong_code(secret: str) -> str:
    """A code no step near now accepts."""
    valid = {_code(secret, steps_ahead=step) for step in range(-2, 3)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


async def _enable(account: Account) -> str:
    secret = (await account.call(ENROLL))["enrollTotp"]["secret"]
    confirmed = (await account.call(CONFIRM, code=_code(secret)))["confirmTotp"]
    assert confirmed == {"id": account.id, "twoFactorEnabled": True}
    return secret


async def _challenge(app: RunningApp, username: str) -> dict[str, Any]:
    body = await graphql(app.http, LOGIN, {"input": {"login": username, "password": PASSWORD}})
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "TWO_FACTOR_REQUIRED"
    return error["extensions"]


@pytest.mark.smoke
async def test_login_with_totp_needs_the_password_then_a_current_code(app: RunningApp) -> None:
    # given alice turned on two-factor sign-in
    alice = await register(app.http, "alice")
    secret = await _enable(alice)
    assert (await alice.call(ME_2FA))["me"]["twoFactorEnabled"] is True
    # when she logs in with her password
    challenge = await _challenge(app, "alice")
    assert challenge["method"] == "TOTP"
    # then a code one step ahead (the one used to confirm is spent) finishes the login
    result = await data(
        app.http,
        VERIFY_LOGIN,
        {"challenge": challenge["challenge"], "code": _code(secret, steps_ahead=1)},
    )
    token = result["verifyTwoFactorLogin"]["accessToken"]
    assert (await data(app.http, ME, token=token))["me"]["username"] == "alice"


async def test_enrolment_gives_an_otpauth_uri_and_a_png_qr_code(app: RunningApp) -> None:
    alice = await register(app.http, "scanner")
    enrolment = (await alice.call(ENROLL))["enrollTotp"]
    assert enrolment["otpauthUri"].startswith("otpauth://totp/chatr:scanner?")
    assert f"secret={enrolment['secret']}" in enrolment["otpauthUri"]
    prefix = "data:image/png;base64,"
    assert enrolment["qrCodePng"].startswith(prefix)
    assert base64.b64decode(enrolment["qrCodePng"][len(prefix) :])[:8] == b"\x89PNG\r\n\x1a\n"
    # not on until confirmed
    assert (await alice.call(ME_2FA))["me"]["twoFactorEnabled"] is False


async def test_a_code_cannot_be_used_twice(app: RunningApp) -> None:
    alice = await register(app.http, "replayed")
    secret = await _enable(alice)
    code = _code(secret, steps_ahead=1)
    first = await _challenge(app, "replayed")
    await data(app.http, VERIFY_LOGIN, {"challenge": first["challenge"], "code": code})
    # when the same code is presented again within its window
    second = await _challenge(app, "replayed")
    with pytest.raises(GraphQLError) as replay:
        await data(app.http, VERIFY_LOGIN, {"challenge": second["challenge"], "code": code})
    # then it is refused; and so is the (older) code that confirmed enrolment
    assert replay.value.codes == ["BAD_USER_INPUT"]
    with pytest.raises(GraphQLError) as older:
        await data(
            app.http, VERIFY_LOGIN, {"challenge": second["challenge"], "code": _code(secret)}
        )
    assert older.value.codes == ["BAD_USER_INPUT"]


async def test_six_wrong_codes_lock_further_attempts_for_the_window(limited: RunningApp) -> None:
    alice = await register(limited.http, "locked")
    secret = await _enable(alice)
    challenge = (await _challenge(limited, "locked"))["challenge"]
    good = _code(secret, steps_ahead=1)
    wrong = _wrong_code(secret)
    for _ in range(6):
        with pytest.raises(GraphQLError) as failure:
            await data(limited.http, VERIFY_LOGIN, {"challenge": challenge, "code": wrong})
        assert failure.value.codes == ["BAD_USER_INPUT"]
    body = await graphql(limited.http, VERIFY_LOGIN, {"challenge": challenge, "code": good})
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert body["errors"][0]["extensions"]["retryAfter"] > 0


@pytest.mark.parametrize("challenge", ["garbage", "", "a.b.c"])
async def test_a_forged_challenge_is_unauthenticated(app: RunningApp, challenge: str) -> None:
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, VERIFY_LOGIN, {"challenge": challenge, "code": "123456"})
    assert failure.value.codes == ["UNAUTHENTICATED"]


async def test_an_access_token_is_not_a_challenge_and_a_challenge_is_not_an_access_token(
    app: RunningApp,
) -> None:
    alice = await register(app.http, "mixer")
    await _enable(alice)
    with pytest.raises(GraphQLError) as as_challenge:
        await data(app.http, VERIFY_LOGIN, {"challenge": alice.token, "code": "123456"})
    assert as_challenge.value.codes == ["UNAUTHENTICATED"]
    challenge = (await _challenge(app, "mixer"))["challenge"]
    with pytest.raises(GraphQLError) as as_token:
        await data(app.http, ME, token=challenge)
    assert as_token.value.codes == ["UNAUTHENTICATED"]


async def test_enrolling_twice_is_a_conflict_and_confirming_without_enrolling_is_refused(
    app: RunningApp,
) -> None:
    alice = await register(app.http, "twice")
    with pytest.raises(GraphQLError) as early:
        await alice.call(CONFIRM, code="123456")
    assert early.value.codes == ["BAD_USER_INPUT"]
    await _enable(alice)
    with pytest.raises(GraphQLError) as again:
        await alice.call(ENROLL)
    assert again.value.codes == ["CONFLICT"]


async def test_disabling_needs_a_current_code_and_then_login_is_password_only(
    app: RunningApp,
) -> None:
    alice = await register(app.http, "optout")
    secret = await _enable(alice)
    with pytest.raises(GraphQLError) as wrong:
        await alice.call(
            DISABLE, code="000000" if _code(secret, steps_ahead=1) != "000000" else "111111"
        )
    assert wrong.value.codes == ["BAD_USER_INPUT"]
    disabled = (await alice.call(DISABLE, code=_code(secret, steps_ahead=1)))["disableTotp"]
    assert disabled == {"id": alice.id, "twoFactorEnabled": False}
    login = await data(app.http, LOGIN, {"input": {"login": "optout", "password": PASSWORD}})
    assert login["login"]["user"]["username"] == "optout"


async def test_two_factor_mutations_need_a_login(app: RunningApp) -> None:
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, ENROLL)
    assert failure.value.codes == ["UNAUTHENTICATED"]
