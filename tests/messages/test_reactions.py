"""Reactions: one emoji per person per message, toggled, summarised, members only."""

from __future__ import annotations

import pytest

from chatr.settings import Settings
from tests.groups.helpers import LEAVE, group_with
from tests.messages.helpers import REACT, UNSEND, history
from tests.support.api import GraphQLError, register
from tests.support.servers import RunningApp, in_process_app


@pytest.mark.smoke
async def test_same_emoji_again_takes_it_back_and_another_replaces_it(app: RunningApp) -> None:
    # given a DM message
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("lunch?", to=bob)
    # when bob reacts, changes his mind, then taps the same emoji again
    first = (await bob.call(REACT, m=sent["id"], e="👍"))["reactToMessage"]
    changed = (await bob.call(REACT, m=sent["id"], e="❤️"))["reactToMessage"]
    taken_back = (await bob.call(REACT, m=sent["id"], e="❤️"))["reactToMessage"]
    # then he has at most one reaction at a time
    assert first["reactions"] == [
        {"emoji": "👍", "count": 1, "reactedByMe": True, "reactors": [{"id": bob.id}]}
    ]
    assert changed["reactions"] == [
        {"emoji": "❤️", "count": 1, "reactedByMe": True, "reactors": [{"id": bob.id}]}
    ]
    assert taken_back["reactions"] == []


async def test_summary_counts_each_emoji_with_its_first_reactors(app: RunningApp) -> None:
    # given a group of five and one message
    owner, *members = [await register(app.http) for _ in range(5)]
    group_id = await group_with(owner, members=members)
    sent = await owner.send("release is out", conversation_id=group_id)
    # when four people react 🎉 and one 👍 (skin tone: still one emoji)
    for member in members:
        await member.call(REACT, m=sent["id"], e="🎉")
    await owner.call(REACT, m=sent["id"], e="👍🏽")
    # then the summary shows the most used first, the first three reactors, and mine
    seen = (await history(members[0], group_id))["messages"][-1]["reactions"]
    assert seen == [
        {
            "emoji": "🎉",
            "count": 4,
            "reactedByMe": True,
            "reactors": [{"id": m.id} for m in members[:3]],
        },
        {"emoji": "👍🏽", "count": 1, "reactedByMe": False, "reactors": [{"id": owner.id}]},
    ]


@pytest.mark.parametrize(
    "emoji", ["", "a", "👍👍", "👍 ", ":thumbsup:", "🎉x", "x" * 40, "\u200d", "👍\u0000"]
)
async def test_a_reaction_is_exactly_one_emoji(app: RunningApp, emoji: str) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("hi", to=bob)
    with pytest.raises(GraphQLError) as refused:
        await bob.call(REACT, m=sent["id"], e=emoji)
    assert refused.value.codes == ["BAD_USER_INPUT"]
    assert (await history(bob, sent["conversationId"]))["messages"][0]["reactions"] == []


@pytest.mark.parametrize("emoji", ["👨‍👩‍👧‍👦", "🇫🇷", "1️⃣", "🏳️‍🌈", "👩🏿‍💻", "❤️"])
async def test_any_single_emoji_sequence_is_a_reaction(app: RunningApp, emoji: str) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("hi", to=bob)
    reacted = (await bob.call(REACT, m=sent["id"], e=emoji))["reactToMessage"]
    assert [r["emoji"] for r in reacted["reactions"]] == [emoji]


async def test_only_current_members_react(app: RunningApp) -> None:
    # given a group message, someone who left, and someone never in it
    owner, leaver, stranger = [await register(app.http) for _ in range(3)]
    group_id = await group_with(owner, members=[leaver])
    sent = await owner.send("vote now", conversation_id=group_id)
    await leaver.call(LEAVE, c=group_id)
    # then neither may react (NOT_FOUND, as for a message that does not exist)
    for outsider in (leaver, stranger):
        with pytest.raises(GraphQLError) as refused:
            await outsider.call(REACT, m=sent["id"], e="👍")
        assert refused.value.codes == ["NOT_FOUND"]
    assert (await history(owner, group_id))["messages"][-1]["reactions"] == []


async def test_an_unsent_message_takes_no_reactions(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("gone soon", to=bob)
    await alice.call(UNSEND, m=sent["id"])
    with pytest.raises(GraphQLError) as refused:
        await bob.call(REACT, m=sent["id"], e="👍")
    assert refused.value.codes == ["CONFLICT"]


async def test_reactions_are_rate_limited_per_user(settings: Settings, database: str) -> None:
    limited = settings.with_overrides(rate_limits=True, reaction_limit="3 per minute")
    async with in_process_app(limited) as app:
        alice, bob = await register(app.http), await register(app.http)
        sent = await alice.send("react to me", to=bob)
        for emoji in ("👍", "🎉", "❤️"):
            await bob.call(REACT, m=sent["id"], e=emoji)
        with pytest.raises(GraphQLError) as refused:
            await bob.call(REACT, m=sent["id"], e="👍")
        assert refused.value.codes == ["RATE_LIMITED"]
        # and alice's own limit is untouched
        await alice.call(REACT, m=sent["id"], e="👍")
