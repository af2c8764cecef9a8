"""Replies quote a message of the same conversation; forwards copy a text elsewhere."""

from __future__ import annotations

import pytest

from tests.groups.helpers import group_with
from tests.messages.helpers import EDIT, FORWARD, UNSEND, history, reply
from tests.support.api import BLOCK_USER, GraphQLError, register
from tests.support.servers import RunningApp


@pytest.mark.smoke
async def test_a_reply_keeps_its_quote_through_the_originals_edit_and_unsend(
    app: RunningApp,
) -> None:
    # given a question and a reply to it
    alice, bob = await register(app.http), await register(app.http)
    question = await alice.send("Dinner at 8?", to=bob)
    conversation_id = question["conversationId"]
    answer = await reply(
        bob, "Yes!", conversation_id=conversation_id, reply_to=question["id"], client_id="r1"
    )
    quote = {
        "messageId": question["id"],
        "seq": 1,
        "kind": "TEXT",
        "excerpt": "Dinner at 8?",
        "senderName": alice.username,
        "sender": {"id": alice.id},
        "deleted": False,
    }
    assert answer["replyTo"] == quote
    # when alice edits the question, the quote still shows what bob answered
    await alice.call(EDIT, m=question["id"], body="Dinner at 9?")
    assert (await history(alice, conversation_id))["messages"][1]["replyTo"] == quote
    # and when she unsends it, the quote becomes a tombstone without its text
    await alice.call(UNSEND, m=question["id"])
    seen = (await history(bob, conversation_id))["messages"][1]["replyTo"]
    assert seen == {**quote, "excerpt": None, "deleted": True}
    # and an unsent message cannot be replied to any more
    with pytest.raises(GraphQLError) as refused:
        await reply(
            bob, "?", conversation_id=conversation_id, reply_to=question["id"], client_id="r2"
        )
    assert refused.value.codes == ["CONFLICT"]


async def test_a_reply_quotes_only_a_message_of_the_same_conversation(app: RunningApp) -> None:
    # given alice's DMs with bob and with carol
    alice, bob, carol = [await register(app.http) for _ in range(3)]
    with_bob = await alice.send("to bob", to=bob)
    with_carol = await alice.send("to carol", to=carol)
    # when alice replies in carol's DM to the message in bob's, it is NOT_FOUND
    with pytest.raises(GraphQLError) as refused:
        await reply(
            alice,
            "leak",
            conversation_id=with_carol["conversationId"],
            reply_to=with_bob["id"],
            client_id="cross",
        )
    assert refused.value.codes == ["NOT_FOUND"]
    assert refused.value.errors[0]["extensions"]["field"] == "replyToId"
    # and a stranger replying into their conversation learns nothing of the message id
    mallory = await register(app.http)
    with pytest.raises(GraphQLError) as refused:
        await reply(
            mallory,
            "probe",
            conversation_id=with_bob["conversationId"],
            reply_to=with_bob["id"],
            client_id="probe",
        )
    assert refused.value.codes == ["NOT_FOUND"]
    assert refused.value.errors[0]["extensions"]["field"] == "conversationId"
    assert len((await history(carol, with_carol["conversationId"]))["messages"]) == 1


@pytest.mark.smoke
async def test_forwarding_copies_the_text_marked_forwarded_without_its_sender(
    app: RunningApp,
) -> None:
    # given bob told alice something, and alice has a DM with carol and a group
    alice, bob, carol, dave = [await register(app.http) for _ in range(4)]
    original = await bob.send("the meeting moved to 3pm", to=alice)
    with_carol = (await alice.send("hi carol", to=carol))["conversationId"]
    group_id = await group_with(alice, members=[dave])
    # when alice forwards it to both (twice: a retry)
    forward_input = {
        "messageId": original["id"],
        "conversationIds": [with_carol, group_id],
        "clientMessageId": "fwd-1",
    }
    copies = (await alice.call(FORWARD, input=forward_input))["forwardMessage"]
    again = (await alice.call(FORWARD, input=forward_input))["forwardMessage"]
    # then each conversation got one copy, sent by alice, marked forwarded, nothing of bob's
    assert [c["id"] for c in copies] == [c["id"] for c in again]
    assert [c["conversationId"] for c in copies] == [with_carol, group_id]
    for copy in copies:
        assert copy["body"] == "the meeting moved to 3pm" and copy["forwarded"] is True
        assert copy["sender"] == {"id": alice.id}
        assert (copy["replyTo"], copy["mentions"], copy["editHistory"]) == (None, [], [])
    seen = (await history(carol, with_carol))["messages"][-1]
    assert (seen["body"], seen["forwarded"], seen["sender"]) == (
        "the meeting moved to 3pm",
        True,
        {"id": alice.id},
    )


async def test_forwarding_needs_a_message_i_see_and_a_conversation_i_may_post_in(
    app: RunningApp,
) -> None:
    alice, bob, carol, mallory = [await register(app.http) for _ in range(4)]
    original = await bob.send("private", to=alice)
    with_carol = (await alice.send("hi carol", to=carol))["conversationId"]
    # a stranger cannot forward alice and bob's message anywhere
    own = (await mallory.send("hi", to=carol))["conversationId"]
    with pytest.raises(GraphQLError) as refused:
        await mallory.call(
            FORWARD,
            input={"messageId": original["id"], "conversationIds": [own], "clientMessageId": "m"},
        )
    assert refused.value.codes == ["NOT_FOUND"]
    # alice cannot forward into a conversation that is not hers, nor into a blocked DM
    with pytest.raises(GraphQLError) as refused:
        await alice.call(
            FORWARD,
            input={"messageId": original["id"], "conversationIds": [own], "clientMessageId": "a"},
        )
    assert refused.value.codes == ["NOT_FOUND"]
    await carol.call(BLOCK_USER, u=alice.id)
    with pytest.raises(GraphQLError) as refused:
        await alice.call(
            FORWARD,
            input={
                "messageId": original["id"],
                "conversationIds": [with_carol],
                "clientMessageId": "b",
            },
        )
    assert refused.value.codes == ["FORBIDDEN"]
    assert [m["body"] for m in (await history(carol, own))["messages"]] == ["hi"]
