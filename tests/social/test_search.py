"""searchUsers: who can be found, in which order, and how they relate to me."""

from __future__ import annotations

import pytest

from chatr.services import email_verification, verification
from tests.support.api import Account, GraphQLError, data, register
from tests.support.ids import pk
from tests.support.servers import RunningApp

SEARCH = """
query Search($q: String!, $first: Int) {
  searchUsers(query: $q, first: $first) { relation user { username } }
}
"""
REQUEST = "mutation R($u: ID!) { sendFriendRequest(userId: $u) { state } }"
ACCEPT = "mutation A($u: ID!) { acceptFriendRequest(userId: $u) { state } }"
BLOCK = "mutation B($u: ID!) { blockUser(userId: $u) { blockedAt } }"


async def _verified(app: RunningApp, username: str) -> Account:
    account = await register(app.http, username)
    rt = app.runtime
    code = await verification.issue(
        rt, user_id=pk(account.id), purpose=verification.EMAIL_VERIFICATION
    )
    await email_verification.verify(rt, viewer_id=pk(account.id), code=code)
    return account


async def _search(account: Account, query: str, first: int | None = None) -> list[tuple[str, str]]:
    results = (await account.call(SEARCH, q=query, first=first))["searchUsers"]
    return [(r["user"]["username"], r["relation"]) for r in results]


@pytest.mark.smoke
async def test_friends_come_first_and_each_result_says_how_we_relate(app: RunningApp) -> None:
    # given alice, a friend, someone she asked, someone who asked her, and a stranger
    alice = await _verified(app, "alice")
    friend = await _verified(app, "sam_friend")
    asked = await _verified(app, "sam_asked")
    asker = await _verified(app, "sam_asker")
    await _verified(app, "sam_stranger")
    await alice.call(REQUEST, u=friend.id)
    await friend.call(ACCEPT, u=alice.id)
    await alice.call(REQUEST, u=asked.id)
    await asker.call(REQUEST, u=alice.id)
    # when she searches, in another case
    results = await _search(alice, "SAM")
    # then
    assert results == [
        ("sam_friend", "FRIEND"),
        ("sam_asked", "REQUEST_SENT"),
        ("sam_asker", "REQUEST_RECEIVED"),
        ("sam_stranger", "NONE"),
    ]


async def test_search_leaves_out_me_unverified_and_blocked_people_both_ways(
    app: RunningApp,
) -> None:
    alice = await _verified(app, "kim_alice")
    await register(app.http, "kim_unverified")
    blocked_by_alice = await _verified(app, "kim_blocked")
    blocking_alice = await _verified(app, "kim_blocking")
    await _verified(app, "kim_visible")
    await alice.call(BLOCK, u=blocked_by_alice.id)
    await blocking_alice.call(BLOCK, u=alice.id)
    assert await _search(alice, "kim") == [("kim_visible", "NONE")]


async def test_an_exact_username_ranks_before_partial_matches(app: RunningApp) -> None:
    alice = await _verified(app, "viewer")
    for username in ("lee_a", "lee", "lee_b"):
        await _verified(app, username)
    assert [name for name, _ in await _search(alice, "lee")] == ["lee", "lee_a", "lee_b"]


async def test_wildcards_in_the_query_are_literal(app: RunningApp) -> None:
    alice = await _verified(app, "literal")
    await _verified(app, "someone")
    assert await _search(alice, "%") == []
    assert await _search(alice, "_") == []


@pytest.mark.parametrize(
    ("query", "first"), [("", None), (" ", None), ("x" * 51, None), ("a", 31), ("a", 0)]
)
async def test_out_of_range_searches_are_bad_user_input(
    app: RunningApp, query: str, first: int | None
) -> None:
    alice = await _verified(app, "asker")
    with pytest.raises(GraphQLError) as failure:
        await alice.call(SEARCH, q=query, first=first)
    assert failure.value.codes == ["BAD_USER_INPUT"]


async def test_searching_needs_a_login(app: RunningApp) -> None:
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, SEARCH, {"q": "x"})
    assert failure.value.codes == ["UNAUTHENTICATED"]


async def test_at_most_thirty_people_are_returned(app: RunningApp) -> None:
    alice = await _verified(app, "crowd_viewer")
    for i in range(31):
        await _verified(app, f"crowd{i:02d}")
    assert len(await _search(alice, "crowd")) == 30
    assert len(await _search(alice, "crowd", first=5)) == 5
