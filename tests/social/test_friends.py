"""Friend requests, answers, removal, the lists, and live `friend` events to both sides."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.social import until_listening
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    CANCEL_FRIEND_REQUEST,
    DECLINE_FRIEND_REQUEST,
    FRIEND_EVENTS,
    FRIENDS,
    INCOMING_FRIEND_REQUESTS,
    OUTGOING_FRIEND_REQUESTS,
    REMOVE_FRIEND,
    SEND_FRIEND_REQUEST,
    UNBLOCK_USER,
    Account,
    GraphQLError,
    graphql,
    register,
    user_ids,
)
from tests.support.ids import Kind, missing
from tests.support.servers import RunningApp, served_app
from tests.support.ws import TRANSPORT_WS, Feed, subscribe

FRIENDS_PAGE = """
query Friends($first: Int, $after: String) {
  friends(first: $first, after: $after) {
    edges { cursor node { user { id } state acceptedAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
FRIEND_MUTATIONS = [
    SEND_FRIEND_REQUEST,
    ACCEPT_FRIEND_REQUEST,
    DECLINE_FRIEND_REQUEST,
    CANCEL_FRIEND_REQUEST,
    REMOVE_FRIEND,
]
FRIEND_QUERIES = [FRIENDS, INCOMING_FRIEND_REQUESTS, OUTGOING_FRIEND_REQUESTS]
SET_PRIVACY = """
mutation Privacy($input: PrivacySettingsInput!) { updatePrivacySettings(input: $input) { email } }
"""
REMOVE_FRIEND_SHOWING_EMAIL = """
mutation Remove($u: ID!) { removeFriend(userId: $u) { id username email } }
"""
PROFILE_EMAIL = "query U($id: ID!) { user(id: $id) { id username email } }"
ACCEPT_THEN_REMOVE = """
mutation AcceptThenRemove($u: ID!) {
  accepted: acceptFriendRequest(userId: $u) { user { email } }
  removed: removeFriend(userId: $u) { id username email }
}
"""


async def _codes(account: Account, query: str, **variables: object) -> list[str]:
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return failure.value.codes


async def _events(feed: Feed, count: int) -> list[tuple[str, str, bool]]:
    """(kind, other user's id, byMe) of the next `count` events."""
    return [(e["kind"], e["user"]["id"], e["byMe"]) for e in await feed.take(count)]


@pytest.mark.smoke
async def test_accepted_request_makes_both_friends_until_one_removes_the_other(
    app: RunningApp,
) -> None:
    # given
    alice, bob = await register(app.http), await register(app.http)
    # when alice asks bob
    asked = (await alice.call(SEND_FRIEND_REQUEST, u=bob.id))["sendFriendRequest"]
    # then it waits on bob's side, and nobody is friends yet
    assert asked == {"state": "REQUESTED", "requestedByMe": True, "user": {"id": bob.id}}
    assert await user_ids(alice, OUTGOING_FRIEND_REQUESTS) == [bob.id]
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == [alice.id]
    assert await user_ids(alice, INCOMING_FRIEND_REQUESTS) == []
    assert await user_ids(alice, FRIENDS) == await user_ids(bob, FRIENDS) == []
    # when bob accepts
    accepted = (await bob.call(ACCEPT_FRIEND_REQUEST, u=alice.id))["acceptFriendRequest"]
    # then they are friends and no request is left
    assert accepted == {"state": "ACCEPTED", "requestedByMe": False, "user": {"id": alice.id}}
    assert await user_ids(alice, FRIENDS) == [bob.id]
    assert await user_ids(bob, FRIENDS) == [alice.id]
    assert await user_ids(alice, OUTGOING_FRIEND_REQUESTS) == []
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == []
    # when bob removes alice
    assert (await bob.call(REMOVE_FRIEND, u=alice.id))["removeFriend"] == {"id": alice.id}
    # then neither has a friend
    assert await user_ids(alice, FRIENDS) == await user_ids(bob, FRIENDS) == []


async def test_remove_friend_answers_the_former_friend(app: RunningApp) -> None:
    # given alice shows her email to friends only, and bob is her friend
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SET_PRIVACY, input={"email": "FRIENDS"})
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    await bob.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    alices_email = f"{alice.username}@example.com"
    assert (await bob.call(PROFILE_EMAIL, id=alice.id))["user"]["email"] == alices_email
    # when bob removes her
    removed = (await bob.call(REMOVE_FRIEND_SHOWING_EMAIL, u=alice.id))["removeFriend"]
    # then the answer is alice as `user` shows her to bob now: no friend, so no email
    assert removed == {"id": alice.id, "username": alice.username, "email": None}
    assert (await bob.call(PROFILE_EMAIL, id=alice.id))["user"] == removed


async def test_remove_friend_answers_who_they_are_now_after_the_same_document_saw_a_friend(
    app: RunningApp,
) -> None:
    # given alice, who shows her email to friends only, asked bob to be friends
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SET_PRIVACY, input={"email": "FRIENDS"})
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    # when bob accepts and removes her in one document
    answer = await bob.call(ACCEPT_THEN_REMOVE, u=alice.id)
    # then the first answer shows a friend and the second someone who is not one any more
    assert answer["accepted"]["user"]["email"] == f"{alice.username}@example.com"
    assert answer["removed"] == {"id": alice.id, "username": alice.username, "email": None}


async def test_asking_someone_who_already_asked_me_makes_us_friends_at_once(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    answer = (await bob.call(SEND_FRIEND_REQUEST, u=alice.id))["sendFriendRequest"]
    assert answer == {"state": "ACCEPTED", "requestedByMe": False, "user": {"id": alice.id}}
    assert await user_ids(alice, FRIENDS) == [bob.id]
    assert await user_ids(bob, OUTGOING_FRIEND_REQUESTS) == []


async def test_only_the_addressee_can_accept_a_request(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    assert await _codes(alice, ACCEPT_FRIEND_REQUEST, u=bob.id) == ["FORBIDDEN"]
    assert await user_ids(alice, FRIENDS) == []
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == [alice.id]


async def test_declined_request_is_gone_and_may_be_sent_again(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    declined = (await bob.call(DECLINE_FRIEND_REQUEST, u=alice.id))["declineFriendRequest"]
    assert declined == {"id": alice.id}
    assert await user_ids(alice, OUTGOING_FRIEND_REQUESTS) == []
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == []
    again = (await alice.call(SEND_FRIEND_REQUEST, u=bob.id))["sendFriendRequest"]
    assert again["state"] == "REQUESTED"


async def test_only_the_requester_cancels_and_only_the_addressee_declines(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    assert await _codes(bob, CANCEL_FRIEND_REQUEST, u=alice.id) == ["FORBIDDEN"]
    assert await _codes(alice, DECLINE_FRIEND_REQUEST, u=bob.id) == ["FORBIDDEN"]
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == [alice.id]
    cancelled = (await alice.call(CANCEL_FRIEND_REQUEST, u=bob.id))["cancelFriendRequest"]
    assert cancelled == {"id": bob.id}
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == []


async def test_asking_twice_or_asking_a_friend_is_a_conflict(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    assert await _codes(alice, SEND_FRIEND_REQUEST, u=bob.id) == ["CONFLICT"]
    await bob.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    assert await _codes(alice, SEND_FRIEND_REQUEST, u=bob.id) == ["CONFLICT"]
    assert await _codes(bob, SEND_FRIEND_REQUEST, u=alice.id) == ["CONFLICT"]
    assert await _codes(bob, ACCEPT_FRIEND_REQUEST, u=alice.id) == ["CONFLICT"]
    assert await user_ids(alice, FRIENDS) == [bob.id]


@pytest.mark.parametrize(
    "mutation",
    [ACCEPT_FRIEND_REQUEST, DECLINE_FRIEND_REQUEST, CANCEL_FRIEND_REQUEST, REMOVE_FRIEND],
)
async def test_answering_or_removing_what_does_not_exist_is_not_found(
    app: RunningApp, mutation: str
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    assert await _codes(alice, mutation, u=bob.id) == ["NOT_FOUND"]


async def test_removing_someone_whose_request_is_still_pending_is_not_found(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    assert await _codes(alice, REMOVE_FRIEND, u=bob.id) == ["NOT_FOUND"]
    assert await user_ids(bob, INCOMING_FRIEND_REQUESTS) == [alice.id]


@pytest.mark.parametrize("mutation", FRIEND_MUTATIONS)
async def test_friend_mutations_on_a_user_that_does_not_exist_are_not_found(
    app: RunningApp, mutation: str
) -> None:
    alice = await register(app.http)
    assert await _codes(alice, mutation, u=missing(Kind.USER)) == ["NOT_FOUND"]


@pytest.mark.parametrize("mutation", FRIEND_MUTATIONS)
async def test_friend_mutations_on_yourself_are_bad_user_input(
    app: RunningApp, mutation: str
) -> None:
    alice = await register(app.http)
    assert await _codes(alice, mutation, u=alice.id) == ["BAD_USER_INPUT"]


async def test_malformed_user_id_is_bad_user_input(app: RunningApp) -> None:
    alice = await register(app.http)
    assert await _codes(alice, SEND_FRIEND_REQUEST, u="not-a-number") == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("document", FRIEND_MUTATIONS + FRIEND_QUERIES)
async def test_friends_without_a_token_are_unauthenticated(app: RunningApp, document: str) -> None:
    alice = await register(app.http)
    anonymous = Account(app.http, "0", "nobody", token="", refresh_token="")
    variables = {"u": alice.id} if document in FRIEND_MUTATIONS else {}
    assert await _codes(anonymous, document, **variables) == ["UNAUTHENTICATED"]


async def test_friends_page_newest_first_with_keyset_cursors(app: RunningApp) -> None:
    # given alice befriends three people in turn
    alice = await register(app.http)
    others = [await register(app.http) for _ in range(3)]
    for other in others:
        await alice.call(SEND_FRIEND_REQUEST, u=other.id)
        await other.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    # when she pages two at a time
    first = (await alice.call(FRIENDS_PAGE, first=2))["friends"]
    rest = (await alice.call(FRIENDS_PAGE, first=2, after=first["pageInfo"]["endCursor"]))[
        "friends"
    ]
    # then the newest friendship comes first and nothing repeats
    pages = [[e["node"]["user"]["id"] for e in page["edges"]] for page in (first, rest)]
    assert pages == [[others[2].id, others[1].id], [others[0].id]]
    assert first["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"]


async def test_both_sides_hear_every_friend_event_live(server: RunningApp) -> None:
    # given alice and bob both listening for friend events over real WebSockets
    assert server.ws_url
    alice, bob = await register(server.http), await register(server.http)
    async with (
        subscribe(server.ws_url, alice.token, FRIEND_EVENTS) as alices,
        subscribe(server.ws_url, bob.token, FRIEND_EVENTS) as bobs,
    ):
        await until_listening(server, alice)
        await until_listening(server, bob)
        # when they go through every change there is
        steps = [
            (alice, SEND_FRIEND_REQUEST, "REQUESTED"),
            (bob, ACCEPT_FRIEND_REQUEST, "ACCEPTED"),
            (alice, REMOVE_FRIEND, "REMOVED"),
            (bob, SEND_FRIEND_REQUEST, "REQUESTED"),
            (alice, DECLINE_FRIEND_REQUEST, "DECLINED"),
            (bob, SEND_FRIEND_REQUEST, "REQUESTED"),
            (bob, CANCEL_FRIEND_REQUEST, "CANCELLED"),
            (alice, BLOCK_USER, "BLOCKED"),
            (alice, UNBLOCK_USER, "UNBLOCKED"),
        ]
        for actor, mutation, _ in steps:
            await actor.call(mutation, u=(bob if actor is alice else alice).id)
        # then each hears all of them in order, naming the other person and who acted
        assert await _events(alices, len(steps)) == [
            (kind, bob.id, actor is alice) for actor, _, kind in steps
        ]
        assert await _events(bobs, len(steps)) == [
            (kind, alice.id, actor is bob) for actor, _, kind in steps
        ]
        assert alices.empty() and bobs.empty()


async def test_someone_elses_friend_events_do_not_reach_me(server: RunningApp) -> None:
    assert server.ws_url
    alice, bob, carol = [await register(server.http) for _ in range(3)]
    async with subscribe(server.ws_url, carol.token, FRIEND_EVENTS) as carols:
        await until_listening(server, carol)
        await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
        await alice.call(SEND_FRIEND_REQUEST, u=carol.id)
        assert await _events(carols, 1) == [("REQUESTED", alice.id, False)]


async def test_friend_event_made_through_one_instance_reaches_a_subscriber_on_another(
    server: RunningApp,
) -> None:
    # given a second instance on the same PostgreSQL + Redis, alice listening on the first
    assert server.ws_url
    async with served_app(server.runtime.settings) as other:
        alice = await register(server.http)
        bob = await register(other.http)
        async with subscribe(server.ws_url, alice.token, FRIEND_EVENTS) as alices:
            await until_listening(server, alice)
            # when bob asks her through the other instance
            await bob.call(SEND_FRIEND_REQUEST, u=alice.id)
            # then her subscription on the first instance hears it
            assert await _events(alices, 1) == [("REQUESTED", bob.id, False)]


async def test_friend_events_without_a_token_are_unauthenticated(server: RunningApp) -> None:
    # given an anonymous socket (allowed: it may only run public operations)
    assert server.ws_url
    async with websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        # when it subscribes to friend events
        await socket.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": FRIEND_EVENTS}})
        )
        reply = json.loads(await socket.recv())
    # then it is refused
    errors = reply["payload"] if reply["type"] == "error" else reply["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]


async def test_two_people_asking_each_other_at_once_become_friends_once(
    app: RunningApp,
) -> None:
    # given four pairs (more chances for the two requests to interleave)
    pairs = [(await register(app.http), await register(app.http)) for _ in range(4)]
    # when in every pair both ask at the same moment
    answers = await asyncio.gather(
        *(
            asker.call(SEND_FRIEND_REQUEST, u=other.id)
            for alice, bob in pairs
            for asker, other in ((alice, bob), (bob, alice))
        )
    )
    # then each pair made one request and accepted it: one friendship, nothing pending
    states = [answer["sendFriendRequest"]["state"] for answer in answers]
    assert sorted(states) == ["ACCEPTED"] * 4 + ["REQUESTED"] * 4
    for alice, bob in pairs:
        assert await user_ids(alice, FRIENDS) == [bob.id]
        assert await user_ids(bob, FRIENDS) == [alice.id]
        assert await user_ids(alice, OUTGOING_FRIEND_REQUESTS) == []
        assert await user_ids(bob, OUTGOING_FRIEND_REQUESTS) == []


async def test_guests_can_neither_ask_nor_be_asked_to_be_friends(app: RunningApp) -> None:
    alice = await register(app.http)
    guest = await graphql(
        app.http,
        'mutation { startGuestSession(input: {name: "Visitor"}) { accessToken user { id } } }',
    )
    guest_id = guest["data"]["startGuestSession"]["user"]["id"]
    guest_token = guest["data"]["startGuestSession"]["accessToken"]
    asked = await graphql(app.http, SEND_FRIEND_REQUEST, {"u": guest_id}, token=alice.token)
    assert [e["extensions"]["code"] for e in asked["errors"]] == ["FORBIDDEN"]
    asking = await graphql(app.http, SEND_FRIEND_REQUEST, {"u": alice.id}, token=guest_token)
    assert [e["extensions"]["code"] for e in asking["errors"]] == ["FORBIDDEN"]
    assert await user_ids(alice, INCOMING_FRIEND_REQUESTS) == []
