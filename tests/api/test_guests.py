"""Support-widget guests: a 24-hour session that can talk to support staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from chatr.models import AuthSession
from chatr.models.base import utcnow
from chatr.services import admin
from tests.messages.helpers import EDIT, REACT, UNSEND, history
from tests.support.api import ME, PASSWORD, Account, GraphQLError, data, register
from tests.support.ids import pk
from tests.support.servers import RunningApp

START = """
mutation Start($input: GuestSessionInput!) {
  startGuestSession(input: $input) { accessToken refreshToken user { id displayName } }
}
"""


async def _guest(app: RunningApp, name: str = "Visitor") -> Account:
    payload = (
        await data(
            app.http,
            START,
            {"input": {"name": name, "email": "v@example.com", "pageContext": "/pricing"}},
        )
    )["startGuestSession"]
    return Account(
        app.http, payload["user"]["id"], name, payload["accessToken"], payload["refreshToken"]
    )


async def _staff(app: RunningApp) -> Account:
    # Administrators count as support staff (a SUPPORT role exists for dedicated agents).
    await admin.create_admin(app.runtime, username="agent", password=PASSWORD)
    payload = (
        await data(
            app.http,
            "mutation L($i: LoginInput!) { login(input: $i) { accessToken user { id } } }",
            {"i": {"login": "agent", "password": PASSWORD}},
        )
    )["login"]
    return Account(app.http, payload["user"]["id"], "agent", payload["accessToken"], "")


@pytest.mark.smoke
async def test_a_visitor_gets_a_guest_session_and_can_chat_with_support(app: RunningApp) -> None:
    # given a support agent and a visitor who starts a chat
    agent = await _staff(app)
    guest = await _guest(app, "Ada from the pricing page")
    assert (await guest.call(ME))["me"]["displayName"] == "Ada from the pricing page"
    # when the guest writes to support, and support replies
    sent = await guest.send("Do you have a student discount?", to=agent)
    reply = await agent.send("We do!", conversation_id=sent["conversationId"])
    # then both messages are in the one conversation
    assert reply["seq"] == 2


async def test_a_guest_edits_and_unsends_its_own_messages_and_reacts(app: RunningApp) -> None:
    # given a guest's chat with support
    agent = await _staff(app)
    guest = await _guest(app)
    typo = await guest.send("Do you hvae a discount?", to=agent)
    oops = await guest.send("wrong window, sorry", conversation_id=typo["conversationId"])
    answer = await agent.send("We do!", conversation_id=typo["conversationId"])
    # when the guest fixes its typo, unsends the stray message and reacts to the answer
    await guest.call(EDIT, m=typo["id"], body="Do you have a discount?")
    await guest.call(UNSEND, m=oops["id"])
    await guest.call(REACT, m=answer["id"], e="🙏")
    # then support sees all three, as from any member
    edited, unsent, answered = (await history(agent, typo["conversationId"]))["messages"]
    assert edited["body"] == "Do you have a discount?" and edited["editedAt"]
    assert unsent["body"] is None and unsent["deletedBy"] == {"id": guest.id}
    assert answered["reactions"][0]["emoji"] == "🙏"
    assert answered["reactions"][0]["reactors"] == [{"id": guest.id}]
    # and, like any member, the guest cannot change support's message
    with pytest.raises(GraphQLError) as refused:
        await guest.call(EDIT, m=answer["id"], body="We don't.")
    assert refused.value.codes == ["FORBIDDEN"]
    with pytest.raises(GraphQLError) as refused:
        await guest.call(UNSEND, m=answer["id"])
    assert refused.value.codes == ["FORBIDDEN"]


async def test_a_guest_session_lasts_24_hours(app: RunningApp) -> None:
    guest = await _guest(app)
    async with app.runtime.db.reader() as session:
        expires_at = await session.scalar(
            select(AuthSession.expires_at).where(AuthSession.user_id == pk(guest.id))
        )
    assert expires_at is not None
    assert timedelta(hours=23, minutes=59) < expires_at - utcnow() <= timedelta(hours=24)


async def test_guests_and_ordinary_users_cannot_message_each_other(app: RunningApp) -> None:
    guest, alice = await _guest(app), await register(app.http)
    with pytest.raises(GraphQLError) as from_guest:
        await guest.send("hi", to=alice)
    with pytest.raises(GraphQLError) as to_guest:
        await alice.send("hi", to=guest)
    assert from_guest.value.codes == to_guest.value.codes == ["FORBIDDEN"]


@pytest.mark.parametrize(
    "guest_input",
    [
        {"name": ""},
        {"name": "x" * 81},
        {"name": "Ok", "email": "not-an-email"},
        {"name": "Ok", "pageContext": "p" * 501},
    ],
)
async def test_invalid_guest_details_are_bad_user_input(
    app: RunningApp, guest_input: dict[str, str]
) -> None:
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, START, {"input": guest_input})
    assert failure.value.codes == ["BAD_USER_INPUT"]
