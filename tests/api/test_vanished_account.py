"""An account deleted while its token is still trusted is UNAUTHENTICATED, never a crash.

An instance keeps sessions it found live for a few seconds (chatr.infra.session_cache); one
that missed the revocation broadcast still lets the token through. Here the account is deleted
in the database behind the instance's back, so its cache keeps the session: every mutation
that then finds the account gone must answer UNAUTHENTICATED (the client logs in again), not
an INTERNAL_SERVER_ERROR, and store nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select

from chatr.models import Conversation, Message, User
from tests.groups.helpers import CREATE_GROUP
from tests.support.api import SEND, Account, GraphQLError, register
from tests.support.ids import pk
from tests.support.servers import RunningApp


async def _delete_behind_the_cache(app: RunningApp, account: Account) -> None:
    """Delete the account the way another instance would, without telling this one."""
    async with app.runtime.db.engine.begin() as connection:
        await connection.execute(delete(User).where(User.id == pk(account.id)))
    assert app.runtime.sessions.is_live(
        session_id=_session_id(app, account), user_id=pk(account.id)
    ), "the instance must still trust the session for this test to mean anything"


def _session_id(app: RunningApp, account: Account) -> int:
    claims = app.runtime.sessions.claims(account.token)
    assert claims is not None
    return claims.session_id


async def _codes(account: Account, query: str, **variables: object) -> list[str]:
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return failure.value.codes


async def _count(app: RunningApp, model: type[Message] | type[Conversation]) -> int:
    async with app.runtime.db.reader() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.smoke
@pytest.mark.parametrize("target", ["conversation", "existing DM", "new DM"])
async def test_deleted_account_sending_a_message_is_unauthenticated(
    app: RunningApp, target: str
) -> None:
    # given alice talked with bob (so her session is trusted), and carol exists
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    conversation_id = (await alice.send("before", to=bob))["conversationId"]
    where = {
        "conversation": {"conversationId": conversation_id},
        "existing DM": {"recipientId": bob.id},
        "new DM": {"recipientId": carol.id},
    }[target]
    # when her account is deleted elsewhere and she sends again
    await _delete_behind_the_cache(app, alice)
    messages, conversations = await _count(app, Message), await _count(app, Conversation)
    codes = await _codes(alice, SEND, input={"body": "after", "clientMessageId": "k", **where})
    # then she is told to authenticate again, and nothing was stored
    assert codes == ["UNAUTHENTICATED"]
    assert (await _count(app, Message), await _count(app, Conversation)) == (
        messages,
        conversations,
    )


async def test_deleted_account_enrolling_an_authenticator_is_unauthenticated(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.send("before", to=bob)
    await _delete_behind_the_cache(app, alice)
    assert await _codes(alice, "mutation { enrollTotp { secret } }") == ["UNAUTHENTICATED"]


async def test_deleted_account_creating_a_group_is_unauthenticated(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.send("before", to=bob)
    await _delete_behind_the_cache(app, alice)
    codes = await _codes(alice, CREATE_GROUP, input={"name": "Team", "inviteeIds": [bob.id]})
    assert codes == ["UNAUTHENTICATED"]
