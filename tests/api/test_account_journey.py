"""The whole account journey in one run, as a new user lives it."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.support.api import LOGOUT, ME, PASSWORD, REFRESH, GraphQLError, data, graphql, register
from tests.support.servers import RunningApp
from tests.support.smtp_sink import SmtpSink

VERIFY = "mutation V($code: String!) { verifyEmail(code: $code) { emailVerified } }"
ENROLL = "mutation { enrollTotp { secret } }"
CONFIRM = "mutation C($code: String!) { confirmTotp(code: $code) { twoFactorEnabled } }"
LOGIN = "mutation L($i: LoginInput!) { login(input: $i) { accessToken } }"
VERIFY_LOGIN = """
mutation T($challenge: String!, $code: String!) {
  verifyTwoFactorLogin(challenge: $challenge, code: $code) { accessToken refreshToken }
}
"""
ME_STATE = "query { me { username emailVerified twoFactorEnabled } }"


async def test_register_verify_email_enable_totp_login_refresh_logout(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    app = mail_app
    # register; the verification code arrives by mail
    nora = await register(app.http, "nora")
    await nora.call(VERIFY, code=await smtp.next_code("nora@example.com"))
    # turn on TOTP with a code from the authenticator
    secret = (await nora.call(ENROLL))["enrollTotp"]["secret"]
    await nora.call(CONFIRM, code=pyotp.TOTP(secret).now())
    assert (await nora.call(ME_STATE))["me"] == {
        "username": "nora",
        "emailVerified": True,
        "twoFactorEnabled": True,
    }
    # log in: password, then the next authenticator code
    body = await graphql(app.http, LOGIN, {"i": {"login": "nora", "password": PASSWORD}})
    challenge = body["errors"][0]["extensions"]["challenge"]
    code = pyotp.TOTP(secret).at(time.time() + 30)
    tokens = (await data(app.http, VERIFY_LOGIN, {"challenge": challenge, "code": code}))[
        "verifyTwoFactorLogin"
    ]
    # refresh rotates the tokens; the new access token works
    rotated = (await data(app.http, REFRESH, {"token": tokens["refreshToken"]}))["refreshToken"]
    assert (await data(app.http, ME, token=rotated["accessToken"]))["me"]["username"] == "nora"
    # log out: that session's tokens stop working, the first device is untouched
    await data(app.http, LOGOUT, token=rotated["accessToken"])
    with pytest.raises(GraphQLError) as after_logout:
        await data(app.http, ME, token=rotated["accessToken"])
    assert after_logout.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as spent:
        await data(app.http, REFRESH, {"token": rotated["refreshToken"]})
    assert spent.value.codes == ["UNAUTHENTICATED"]
    assert (await nora.call(ME))["me"]["username"] == "nora"
