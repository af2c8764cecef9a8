"""Two tabs refreshing with the same token at once stay signed in; a later replay still
revokes the session (the grace window of issue 9, item 12)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.api import ME, REFRESH, GraphQLError, data, graphql, register
from tests.support.servers import RunningApp
from tests.support.sessions import outlive_refresh_grace


@pytest.mark.smoke
async def test_tabs_refreshing_with_the_same_token_at_once_all_stay_signed_in(
    app: RunningApp,
) -> None:
    # given a signed-in user with three tabs sharing one refresh token
    alice = await register(app.http)
    # when all three refresh at the same moment
    bodies = await asyncio.gather(
        *(graphql(app.http, REFRESH, {"token": alice.refresh_token}) for _ in range(3))
    )
    # then none is refused, they all get the same new refresh token
    assert [body.get("errors") for body in bodies] == [None, None, None]
    pairs = [body["data"]["refreshToken"] for body in bodies]
    assert len({pair["refreshToken"] for pair in pairs}) == 1
    # and every access token they got works, as does the shared new refresh token
    for pair in pairs:
        assert (await data(app.http, ME, token=pair["accessToken"]))["me"]["id"] == alice.id
    rotated = await data(app.http, REFRESH, {"token": pairs[0]["refreshToken"]})
    assert rotated["refreshToken"]["refreshToken"] != pairs[0]["refreshToken"]


async def test_a_retry_just_after_a_refresh_gets_the_same_pair(app: RunningApp) -> None:
    # given a refresh whose answer the client lost
    alice = await register(app.http)
    first = (await data(app.http, REFRESH, {"token": alice.refresh_token}))["refreshToken"]
    # when it retries with the same token a moment later
    again = (await data(app.http, REFRESH, {"token": alice.refresh_token}))["refreshToken"]
    # then it gets the same refresh token and the session lives on
    assert again["refreshToken"] == first["refreshToken"]
    assert (await data(app.http, ME, token=first["accessToken"]))["me"]["id"] == alice.id


async def test_a_spent_token_replayed_after_the_grace_window_revokes_the_session(
    app: RunningApp,
) -> None:
    # given a token rotated longer ago than the grace window
    alice = await register(app.http)
    first = (await data(app.http, REFRESH, {"token": alice.refresh_token}))["refreshToken"]
    await outlive_refresh_grace(app.runtime)
    # when a thief replays it
    with pytest.raises(GraphQLError) as replay:
        await data(app.http, REFRESH, {"token": alice.refresh_token})
    # then it is refused and the whole family is revoked
    assert replay.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as successor:
        await data(app.http, REFRESH, {"token": first["refreshToken"]})
    assert successor.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as access:
        await data(app.http, ME, token=first["accessToken"])
    assert access.value.codes == ["UNAUTHENTICATED"]


async def test_a_replay_within_the_window_after_the_successor_was_spent_revokes_the_session(
    app: RunningApp,
) -> None:
    # given a token whose successor was itself already rotated (the legitimate client moved on)
    alice = await register(app.http)
    first = (await data(app.http, REFRESH, {"token": alice.refresh_token}))["refreshToken"]
    second = (await data(app.http, REFRESH, {"token": first["refreshToken"]}))["refreshToken"]
    # when the first token is replayed, even within the window
    with pytest.raises(GraphQLError) as replay:
        await data(app.http, REFRESH, {"token": alice.refresh_token})
    # then that is a stolen copy: the session is revoked
    assert replay.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as latest:
        await data(app.http, REFRESH, {"token": second["refreshToken"]})
    assert latest.value.codes == ["UNAUTHENTICATED"]
