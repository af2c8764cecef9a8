"""Registration, login, token rotation and logout through GraphQL."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chatr import security
from tests.support.api import LOGIN, LOGOUT, ME, PASSWORD, REFRESH, GraphQLError, data, register
from tests.support.servers import RunningApp, in_process_app
from tests.support.sessions import outlive_refresh_grace


@pytest.mark.smoke
async def test_registered_user_can_log_in_and_see_themselves(app: RunningApp) -> None:
    # given
    alice = await register(app.http, "alice")
    # when
    logged_in = await data(app.http, LOGIN, {"input": {"login": "ALICE", "password": PASSWORD}})
    token = logged_in["login"]["accessToken"]
    # then
    me = await data(app.http, ME, token=token)
    assert me["me"] == {"id": alice.id, "username": "alice", "displayName": "alice"}


async def test_login_by_email_works(app: RunningApp) -> None:
    await register(app.http, "bob")
    result = await data(
        app.http, LOGIN, {"input": {"login": "Bob@Example.com", "password": PASSWORD}}
    )
    assert result["login"]["user"]["username"] == "bob"


async def test_wrong_password_is_unauthenticated(app: RunningApp) -> None:
    await register(app.http, "carol")
    with pytest.raises(GraphQLError) as failure:
        await data(app.http, LOGIN, {"input": {"login": "carol", "password": "Wrong-pass1"}})
    assert failure.value.codes == ["UNAUTHENTICATED"]


async def test_me_is_null_without_a_token(app: RunningApp) -> None:
    assert (await data(app.http, ME))["me"] is None


async def test_refresh_rotates_and_reuse_revokes_the_family(app: RunningApp) -> None:
    # given
    alice = await register(app.http)
    first = (await data(app.http, REFRESH, {"token": alice.refresh_token}))["refreshToken"]
    # when the spent token is presented again, after the grace window for racing tabs
    await outlive_refresh_grace(app.runtime)
    with pytest.raises(GraphQLError) as reuse:
        await data(app.http, REFRESH, {"token": alice.refresh_token})
    # then the whole session is gone: the new refresh token and access token stop working
    assert reuse.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as rotated:
        await data(app.http, REFRESH, {"token": first["refreshToken"]})
    assert rotated.value.codes == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as access:
        await data(app.http, ME, token=first["accessToken"])
    assert access.value.codes == ["UNAUTHENTICATED"]


async def test_logout_revokes_the_access_token(app: RunningApp) -> None:
    alice = await register(app.http)
    assert (await alice.call(LOGOUT))["logout"] is True
    with pytest.raises(GraphQLError) as failure:
        await alice.call(ME)
    assert failure.value.codes == ["UNAUTHENTICATED"]


async def test_duplicate_username_is_a_conflict_case_insensitively(app: RunningApp) -> None:
    await register(app.http, "dave")
    with pytest.raises(GraphQLError) as failure:
        await register(app.http, "DAVE")
    assert failure.value.codes == ["CONFLICT"]


async def test_logout_through_one_instance_is_honoured_by_another_at_once(
    app: RunningApp,
) -> None:
    # given alice's token is known-good (and cached) on a second instance
    async with in_process_app(app.runtime.settings) as other:
        alice = await register(app.http)
        assert (await alice.via(other.http).call(ME))["me"]["id"] == alice.id
        # when she logs out through the first instance
        await alice.call(LOGOUT)
        # then the second refuses the token as soon as the revocation is broadcast
        async with asyncio.timeout(2):
            while True:
                try:
                    await alice.via(other.http).call(ME)
                except GraphQLError as failure:
                    assert failure.codes == ["UNAUTHENTICATED"]
                    break
                await asyncio.sleep(0.01)


async def test_password_hashing_does_not_stall_the_event_loop(
    app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a hasher that notes which thread hashes and verifies (~0.1 s of CPU each: on the
    # event loop's thread every other request would wait that long)
    real = security._hasher
    threads: list[tuple[str, int]] = []

    class Watched:
        def hash(self, password: str | bytes) -> str:
            threads.append(("hash", threading.get_ident()))
            return real.hash(password)

        def verify(self, password_hash: str, password: str | bytes) -> bool:
            threads.append(("verify", threading.get_ident()))
            return real.verify(password_hash, password)

    monkeypatch.setattr(security, "_hasher", Watched())
    # when a sign-up and a login hash and verify passwords
    await register(app.http, "hasher")
    await data(app.http, LOGIN, {"input": {"login": "hasher", "password": PASSWORD}})
    # then both ran, and neither on the event loop's thread (the suite's timings are too noisy
    # to measure the pause itself; bench/latency.py runs on quiet machines)
    assert {kind for kind, _ in threads} == {"hash", "verify"}
    assert threading.get_ident() not in {ident for _, ident in threads}
