"""Signed-in devices: list them, sign one out, sign out all the others."""

from __future__ import annotations

import pytest

from tests.support.api import LOGIN, ME, PASSWORD, Account, GraphQLError, data, register
from tests.support.servers import RunningApp

MY_SESSIONS = "query { mySessions { id deviceLabel current createdAt lastUsedAt } }"
REVOKE = """
mutation Revoke($id: ID!) {
  revokeSession(id: $id) { revokedSessionId sessions { id current deviceLabel } }
}
"""
REVOKE_OTHERS = "mutation { revokeOtherSessions }"


async def _second_device(app: RunningApp, account: Account, label: str) -> Account:
    response = await app.http.post(
        "/graphql",
        json={
            "query": LOGIN,
            "variables": {"input": {"login": account.username, "password": PASSWORD}},
        },
        headers={"User-Agent": label},
    )
    payload = response.json()["data"]["login"]
    return Account(
        app.http, account.id, account.username, payload["accessToken"], payload["refreshToken"]
    )


@pytest.mark.smoke
async def test_user_sees_each_signed_in_device_and_which_one_is_current(app: RunningApp) -> None:
    # given alice signed in on two devices
    alice = await register(app.http)
    phone = await _second_device(app, alice, "chatr-phone/1.0")
    # when she lists her sessions from the phone
    sessions = (await phone.call(MY_SESSIONS))["mySessions"]
    # then both are there, the phone marked current, newest use first
    assert len(sessions) == 2
    assert [s["current"] for s in sessions] == [True, False]
    assert sessions[0]["deviceLabel"] == "chatr-phone/1.0"


async def test_revoking_one_device_signs_only_that_device_out(app: RunningApp) -> None:
    alice = await register(app.http)
    phone = await _second_device(app, alice, "phone")
    phone_session = next(s for s in (await phone.call(MY_SESSIONS))["mySessions"] if s["current"])
    # when alice signs the phone out from her first device
    revoked = (await alice.call(REVOKE, id=phone_session["id"]))["revokeSession"]
    assert revoked["revokedSessionId"] == phone_session["id"]
    # then the phone's token stops working and the first device keeps going
    with pytest.raises(GraphQLError) as failure:
        await phone.call(ME)
    assert failure.value.codes == ["UNAUTHENTICATED"]
    assert (await alice.call(ME))["me"]["id"] == alice.id
    assert len((await alice.call(MY_SESSIONS))["mySessions"]) == 1


async def test_revoke_session_answers_the_remaining_sessions(app: RunningApp) -> None:
    # given alice signed in on three devices
    alice = await register(app.http)
    phone = await _second_device(app, alice, "phone")
    tablet = await _second_device(app, alice, "tablet")
    tablets = next(s for s in (await tablet.call(MY_SESSIONS))["mySessions"] if s["current"])
    # when she signs the tablet out from the phone
    revoked = (await phone.call(REVOKE, id=tablets["id"]))["revokeSession"]
    # then the answer names the tablet's session and lists the two she has left, as
    # `mySessions` does (the phone, making the request, is current)
    assert revoked["revokedSessionId"] == tablets["id"]
    remaining = (await phone.call(MY_SESSIONS))["mySessions"]
    assert revoked["sessions"] == [
        {"id": s["id"], "current": s["current"], "deviceLabel": s["deviceLabel"]} for s in remaining
    ]
    assert len(remaining) == 2 and tablets["id"] not in {s["id"] for s in remaining}
    assert [s["deviceLabel"] for s in revoked["sessions"] if s["current"]] == ["phone"]


async def test_someone_elses_session_cannot_be_revoked(app: RunningApp) -> None:
    alice, mallory = await register(app.http), await register(app.http)
    alices_session = (await alice.call(MY_SESSIONS))["mySessions"][0]["id"]
    with pytest.raises(GraphQLError) as failure:
        await mallory.call(REVOKE, id=alices_session)
    assert failure.value.codes == ["NOT_FOUND"]
    assert (await alice.call(ME))["me"]["id"] == alice.id


async def test_revoke_other_sessions_keeps_only_the_current_one(app: RunningApp) -> None:
    alice = await register(app.http)
    others = [await _second_device(app, alice, f"device {i}") for i in range(3)]
    assert (await alice.call(REVOKE_OTHERS))["revokeOtherSessions"] == 3
    for device in others:
        with pytest.raises(GraphQLError) as failure:
            await device.call(ME)
        assert failure.value.codes == ["UNAUTHENTICATED"]
    sessions = (await alice.call(MY_SESSIONS))["mySessions"]
    assert [s["current"] for s in sessions] == [True]


async def test_listing_sessions_needs_a_login(app: RunningApp) -> None:
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, MY_SESSIONS)
    assert failure.value.codes == ["UNAUTHENTICATED"]
