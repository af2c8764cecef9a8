"""Phone numbers: sign-up with one, texted codes from a real SMS webhook, change, resend."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from chatr.models import VerificationCode
from chatr.models.base import utcnow
from chatr.services import verification
from tests.support.api import (
    ME_VERIFICATION,
    REGISTER,
    SET_PHONE,
    VERIFY_PHONE,
    GraphQLError,
    data,
    graphql,
    register,
    register_with_phone,
)
from tests.support.servers import RunningApp
from tests.support.sms_sink import SmsSink

RESEND = "mutation { resendPhoneVerification }"
PEER_STATE = """
query { conversations { edges { node { peer { username phoneVerified twoFactorMethod } } } } }
"""
PHONE = "+15551230001"


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.mark.smoke
async def test_sign_up_with_a_phone_texts_a_code_that_verifies_the_number(
    code_app: RunningApp, sms: SmsSink
) -> None:
    # given a new account with a phone number (its code is texted in the background)
    alice = await register_with_phone(code_app.http, "alice", PHONE)
    assert (await alice.call(ME_VERIFICATION))["me"]["phoneVerified"] is False
    # when she enters the code from the text
    code = await sms.next_code(PHONE)
    assert sms.texts_to(PHONE)[0].authorization == "Bearer test-token"
    assert (await alice.call(VERIFY_PHONE, code=code))["verifyPhone"] == {
        "id": alice.id,
        "phone": PHONE,
        "phoneVerified": True,
    }
    # then the number is verified and the code cannot be used again
    assert (await alice.call(ME_VERIFICATION))["me"]["phoneVerified"] is True
    with pytest.raises(GraphQLError) as reuse:
        await alice.call(VERIFY_PHONE, code=code)
    assert reuse.value.codes == ["BAD_USER_INPUT"]


async def test_registration_still_works_without_email_or_phone(code_app: RunningApp) -> None:
    result = await data(
        code_app.http, REGISTER, {"input": {"username": "bare", "password": "Secret-pass1"}}
    )
    assert result["register"]["user"]["username"] == "bare"


@pytest.mark.parametrize(
    "phone",
    ["15551230001", "+0551230001", "+1234567", "+1234567890123456", "+1555abc0001", "+"],
)
async def test_a_phone_that_is_not_e164_is_bad_user_input(
    code_app: RunningApp, sms: SmsSink, phone: str
) -> None:
    with pytest.raises(GraphQLError) as at_sign_up:
        await register_with_phone(code_app.http, "badphone", phone)
    assert at_sign_up.value.codes == ["BAD_USER_INPUT"]
    assert at_sign_up.value.errors[0]["extensions"]["field"] == "phone"
    bob = await register(code_app.http, "bob")
    with pytest.raises(GraphQLError) as on_change:
        await bob.call(SET_PHONE, phone=phone)
    assert on_change.value.codes == ["BAD_USER_INPUT"]
    assert sms.attempts == 0


async def test_a_phone_another_account_has_is_a_conflict_however_it_is_spelled(
    code_app: RunningApp,
) -> None:
    await register_with_phone(code_app.http, "first", "+15551230002")
    with pytest.raises(GraphQLError) as at_sign_up:
        await register_with_phone(code_app.http, "second", "+1 (555) 123-0002")
    assert at_sign_up.value.codes == ["CONFLICT"]
    assert at_sign_up.value.errors[0]["extensions"]["field"] == "phone"
    bob = await register(code_app.http, "bob")
    with pytest.raises(GraphQLError) as on_change:
        await bob.call(SET_PHONE, phone="+1.555.123.0002")
    assert on_change.value.codes == ["CONFLICT"]


async def test_setting_a_new_number_unverifies_it_and_texts_a_code_to_the_new_number(
    code_app: RunningApp, sms: SmsSink
) -> None:
    # given alice with a verified number
    alice = await register_with_phone(code_app.http, "mover", "+15551230003")
    await alice.call(VERIFY_PHONE, code=await sms.next_code("+15551230003"))
    # when she changes it
    changed = (await alice.call(SET_PHONE, phone="+447700900003"))["setPhoneNumber"]
    assert changed == {"id": alice.id, "phone": "+447700900003", "phoneVerified": False}
    # then it is unverified until the code texted to the new number comes back
    assert (await alice.call(ME_VERIFICATION))["me"]["phoneVerified"] is False
    code = await sms.next_code("+447700900003")
    assert (await alice.call(VERIFY_PHONE, code=code))["verifyPhone"]["phoneVerified"] is True
    assert (await alice.call(ME_VERIFICATION))["me"]["phoneVerified"] is True
    # and setting the same verified number again changes nothing and texts nothing
    unchanged = (await alice.call(SET_PHONE, phone="+447700900003"))["setPhoneNumber"]
    assert unchanged == {"id": alice.id, "phone": "+447700900003", "phoneVerified": True}
    assert len(sms.texts_to("+447700900003")) == 1


async def test_an_account_without_a_phone_can_add_one(code_app: RunningApp, sms: SmsSink) -> None:
    bob = await register(code_app.http, "adder")
    with pytest.raises(GraphQLError) as nothing_to_resend:
        await bob.call(RESEND)
    assert nothing_to_resend.value.codes == ["BAD_USER_INPUT"]
    added = (await bob.call(SET_PHONE, phone="+15551230004"))["setPhoneNumber"]
    assert added == {"id": bob.id, "phone": "+15551230004", "phoneVerified": False}
    await bob.call(VERIFY_PHONE, code=await sms.next_code("+15551230004"))
    assert (await bob.call(ME_VERIFICATION))["me"]["phoneVerified"] is True


async def test_resending_texts_a_new_code_and_retires_the_old_one(
    code_app: RunningApp, sms: SmsSink
) -> None:
    alice = await register_with_phone(code_app.http, "again", "+15551230005")
    first = await sms.next_code("+15551230005")
    assert (await alice.call(RESEND))["resendPhoneVerification"] is True
    second = await sms.next_code("+15551230005", after=1)
    if first != second:
        with pytest.raises(GraphQLError) as retired:
            await alice.call(VERIFY_PHONE, code=first)
        assert retired.value.codes == ["BAD_USER_INPUT"]
    assert (await alice.call(VERIFY_PHONE, code=second))["verifyPhone"]["phoneVerified"] is True
    # once verified there is nothing to resend
    assert (await alice.call(RESEND))["resendPhoneVerification"] is False


async def test_wrong_and_expired_codes_are_refused(code_app: RunningApp, sms: SmsSink) -> None:
    alice = await register_with_phone(code_app.http, "late", "+15551230006")
    code = await sms.next_code("+15551230006")
    with pytest.raises(GraphQLError) as wrong:
        await alice.call(VERIFY_PHONE, code=_wrong(code))
    assert wrong.value.codes == ["BAD_USER_INPUT"]
    async with code_app.runtime.db.session() as session, session.begin():
        await session.execute(
            update(VerificationCode)
            .where(VerificationCode.purpose == verification.PHONE_VERIFICATION)
            .values(expires_at=utcnow())
        )
    with pytest.raises(GraphQLError) as expired:
        await alice.call(VERIFY_PHONE, code=code)
    assert expired.value.codes == ["BAD_USER_INPUT"]
    assert (await alice.call(ME_VERIFICATION))["me"]["phoneVerified"] is False


async def test_resending_is_rate_limited_per_address(
    limited_code_app: RunningApp, sms: SmsSink
) -> None:
    alice = await register_with_phone(limited_code_app.http, "impatient", "+15551230007")
    for _ in range(3):
        assert (await alice.call(RESEND))["resendPhoneVerification"] is True
    body = await graphql(limited_code_app.http, RESEND, token=alice.token)
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert body["errors"][0]["extensions"]["retryAfter"] > 0
    # the same budget covers texting a code to a new number
    changed = await graphql(
        limited_code_app.http, SET_PHONE, {"phone": "+15551230008"}, token=alice.token
    )
    assert changed["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_the_api_answers_before_the_text_is_sent(code_app: RunningApp, sms: SmsSink) -> None:
    # given an SMS provider that does not answer yet
    sms.hold()
    # when someone signs up with a phone number, the API answers anyway
    alice = await register_with_phone(code_app.http, "quick", "+15551230009")
    assert sms.messages == []
    # then the text goes out once the provider answers, and its code works
    sms.release()
    code = await sms.next_code("+15551230009")
    assert (await alice.call(VERIFY_PHONE, code=code))["verifyPhone"]["phoneVerified"] is True


async def test_a_failing_webhook_is_retried_and_the_code_still_arrives(
    code_app: RunningApp, sms: SmsSink
) -> None:
    # given a provider that fails twice with 500 before it accepts
    sms.fail_next(2)
    alice = await register_with_phone(code_app.http, "retried", "+15551230010")
    # then the third attempt delivers the code, once
    code = await sms.next_code("+15551230010")
    assert sms.attempts == 3
    assert len(sms.texts_to("+15551230010")) == 1
    assert (await alice.call(VERIFY_PHONE, code=code))["verifyPhone"]["phoneVerified"] is True


async def test_phone_verified_and_two_factor_method_are_only_shown_to_the_account_itself(
    code_app: RunningApp, sms: SmsSink
) -> None:
    alice = await register_with_phone(code_app.http, "private", "+15551230011")
    await alice.call(VERIFY_PHONE, code=await sms.next_code("+15551230011"))
    bob = await register(code_app.http, "peer")
    await bob.send("hi", to=alice)
    (edge,) = (await bob.call(PEER_STATE))["conversations"]["edges"]
    assert edge["node"]["peer"] == {
        "username": "private",
        "phoneVerified": None,
        "twoFactorMethod": None,
    }
