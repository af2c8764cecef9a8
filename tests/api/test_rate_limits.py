"""Per-IP limits on register and login, counted per resolver call and shared by instances."""

from __future__ import annotations

import pytest

from tests.support.api import LOGIN, PASSWORD, GraphQLError, graphql, register
from tests.support.servers import RunningApp, in_process_app


def _login(username: str, password: str = "Wrong-pass1") -> dict[str, object]:
    return {"input": {"login": username, "password": password}}


@pytest.mark.smoke
async def test_eleventh_login_attempt_in_fifteen_minutes_is_rate_limited(
    limited: RunningApp,
) -> None:
    # given ten failed attempts from one address
    await register(limited.http, "target")
    for _ in range(10):
        body = await graphql(limited.http, LOGIN, _login("target"))
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # when an eleventh comes, even with the right password
    body = await graphql(limited.http, LOGIN, _login("target", PASSWORD))
    # then it is refused with a retry hint and no tokens
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 0 < error["extensions"]["retryAfter"] <= 15 * 60
    assert body["data"] is None


async def test_aliased_login_attempts_in_one_request_count_one_by_one(limited: RunningApp) -> None:
    # given one request carrying twelve aliased logins with the right password
    await register(limited.http, "aliased")
    fields = " ".join(
        f'a{i}: login(input: {{login: "aliased", password: "{PASSWORD}"}}) {{ accessToken }}'
        for i in range(12)
    )
    # when it runs
    body = await graphql(limited.http, "mutation { " + fields + " }")
    # then the eleventh alias hits the limit (mutations run in order and stop there)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["RATE_LIMITED"]
    assert body["errors"][0]["path"] == ["a10"]
    # and the address stays limited for the next request
    follow_up = await graphql(limited.http, LOGIN, _login("aliased", PASSWORD))
    assert follow_up["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_a_failed_aliased_login_stops_the_rest_of_the_request(limited: RunningApp) -> None:
    await register(limited.http, "stopper")
    fields = " ".join(
        f'a{i}: login(input: {{login: "stopper", password: "Wrong-pass1"}}) {{ accessToken }}'
        for i in range(12)
    )
    body = await graphql(limited.http, "mutation { " + fields + " }")
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_sixth_sign_up_from_one_address_is_rate_limited(limited: RunningApp) -> None:
    for i in range(5):
        await register(limited.http, f"signup{i}")
    body = await graphql(
        limited.http,
        "mutation R($input: RegisterInput!) { register(input: $input) { accessToken } }",
        {"input": {"username": "signup5", "password": PASSWORD}},
    )
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_instances_share_the_count(limited: RunningApp) -> None:
    async with in_process_app(limited.runtime.settings) as other:
        await register(limited.http, "shared")
        for instance in (limited, other) * 5:
            await graphql(instance.http, LOGIN, _login("shared"))
        body = await graphql(other.http, LOGIN, _login("shared"))
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_sender_over_a_hundred_messages_a_minute_is_rate_limited_and_nothing_stored(
    limited: RunningApp,
) -> None:
    # given a user who sent 100 messages within the minute, 16 aliased sends per request
    alice, bob = await register(limited.http), await register(limited.http)
    first = await alice.send("1", to=bob)
    sends = [
        f'm{i}: sendMessage(input: {{body: "x", clientMessageId: "{{batch}}-{i}", '
        f'conversationId: "{first["conversationId"]}"}}) {{ seq }}'
        for i in range(11)
    ]
    for batch in range(9):  # 1 + 9 * 11 = 100
        body = await graphql(
            limited.http,
            "mutation { " + " ".join(sends).replace("{batch}", str(batch)) + " }",
            token=alice.token,
        )
        assert not body.get("errors"), body["errors"]
    # when she sends the 101st
    refused = await graphql(
        limited.http,
        "mutation { " + sends[0].replace("{batch}", "late") + " }",
        token=alice.token,
    )
    # then it is refused with a retry hint, and the conversation still ends at seq 100
    (error,) = refused["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 0 < error["extensions"]["retryAfter"] <= 60
    conversation = await bob.call(
        "query C($id: ID!) { conversation(id: $id) { lastSeq } }", id=first["conversationId"]
    )
    assert conversation["conversation"]["lastSeq"] == 100
    # and the limit is hers alone: bob can still answer
    assert (await bob.send("still here", to=alice))["seq"] == 101


async def test_the_send_guard_is_a_setting(settings, database) -> None:
    tight = settings.with_overrides(rate_limits=True, send_message_limit="2 per minute")
    async with in_process_app(tight) as app:
        alice, bob = await register(app.http), await register(app.http)
        await alice.send("1", to=bob)
        await alice.send("2", to=bob)
        with pytest.raises(GraphQLError) as failure:
            await alice.send("3", to=bob)
        assert failure.value.codes == ["RATE_LIMITED"]
