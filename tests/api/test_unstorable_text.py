"""Text no column can hold: refused with BAD_USER_INPUT, or matching nothing; never a crash.

PostgreSQL text cannot contain NUL, and a lone surrogate (JSON lets a client send "\\ud800")
cannot even be encoded as UTF-8. Both used to reach the database, or a hash, and come back as
INTERNAL_SERVER_ERROR (found by tests/security/test_schemathesis.py), as did a TOTP code in
non-ASCII digits. Now stored text is refused naming its field and changes nothing, lookups by
such text find nobody, and codes or tokens holding it are simply wrong.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from chatr import security
from chatr.services import admin
from tests.groups.helpers import create_group
from tests.support.api import LOGIN, PASSWORD, REFRESH, REGISTER, SEND, data, register
from tests.support.servers import RunningApp

NUL = "a\x00b"
SURROGATE = "a\ud800b"
UNSTORABLE = [pytest.param(NUL, id="nul"), pytest.param(SURROGATE, id="lone-surrogate")]

UPDATE_PROFILE = "mutation P($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }"
CREATE_GROUP = "mutation G($input: CreateGroupInput!) { createGroup(input: $input) { id } }"
UPDATE_GROUP = "mutation G($input: UpdateGroupInput!) { updateGroup(input: $input) { id } }"
GUEST = (
    "mutation G($input: GuestSessionInput!) { startGuestSession(input: $input) { accessToken } }"
)
RESET_PASSWORD = """
mutation R($email: String!, $code: String!, $password: String!) {
  resetPassword(email: $email, code: $code, newPassword: $password)
}
"""
PROFILE = "query { me { displayName firstName lastName avatarUrl } }"
INBOX = "query { conversations { edges { node { id } } } }"
USERNAME_AVAILABLE = "query A($u: String!) { usernameAvailable(username: $u) { available } }"
MY_GROUP = "query C($id: ID!) { conversation(id: $id) { name description } }"
BY_USERNAME = "query U($u: String!) { userByUsername(username: $u) { id } }"
SEARCH = "query S($q: String!) { searchUsers(query: $q) { user { id } } }"
USERS = "query U($s: String) { users(search: $s) { edges { node { id } } } }"
REQUEST_RESET = "mutation R($email: String!) { requestPasswordReset(email: $email) }"
VERIFY_EMAIL = "mutation V($code: String!) { verifyEmail(code: $code) { id } }"
ENROLL_TOTP = "mutation { enrollTotp { secret } }"
CONFIRM_TOTP = "mutation C($code: String!) { confirmTotp(code: $code) { id } }"


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


async def _call(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    """Like a client that escapes non-ASCII in JSON: that is how a lone surrogate travels."""
    headers = {"content-type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables}, ensure_ascii=True)
    response = await http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _refusal(body: dict[str, Any]) -> tuple[str, str | None]:
    (error,) = body["errors"]
    return error["extensions"]["code"], error["extensions"].get("field")


@pytest.mark.parametrize("bad", UNSTORABLE)
async def test_stored_text_the_database_cannot_hold_is_refused_naming_its_field(
    app: RunningApp, bad: str
) -> None:
    # given alice, with a profile, a friend to write to and a group
    alice, bob = await register(app.http), await register(app.http)
    group_id = (await create_group(alice, name="Team"))["id"]
    profile_before = await alice.call(PROFILE)
    url = f"https://example.com/{bad}"
    address = f"new{bad}@example.com"

    def new_account(number: int, **fields: str) -> dict[str, Any]:
        return {"input": {"username": f"newbie{number}", "password": PASSWORD, **fields}}

    def to_bob(**fields: str) -> dict[str, Any]:
        return {"input": {"body": "hi", "clientMessageId": "c1", "recipientId": bob.id, **fields}}

    def of(**fields: str) -> dict[str, Any]:
        return {"input": fields}

    def of_group(**fields: str) -> dict[str, Any]:
        return {"input": {"conversationId": group_id, **fields}}

    reset = {"email": "x@example.com", "code": "123456", "password": PASSWORD + bad}
    cases: list[tuple[str, str, dict[str, Any], str | None]] = [
        # (field named, document, variables, token)
        ("email", REGISTER, new_account(1, email=address), None),
        ("displayName", REGISTER, new_account(2, displayName=bad), None),
        ("firstName", REGISTER, new_account(3, firstName=bad), None),
        ("password", REGISTER, new_account(4, password=PASSWORD + bad), None),
        ("body", SEND, to_bob(body=bad), alice.token),
        ("clientMessageId", SEND, to_bob(clientMessageId=bad), alice.token),
        ("displayName", UPDATE_PROFILE, of(displayName=bad), alice.token),
        ("firstName", UPDATE_PROFILE, of(firstName=bad), alice.token),
        ("lastName", UPDATE_PROFILE, of(lastName=bad), alice.token),
        ("avatarUrl", UPDATE_PROFILE, of(avatarUrl=url), alice.token),
        ("name", CREATE_GROUP, of(name=bad), alice.token),
        ("description", CREATE_GROUP, of(name="G", description=bad), alice.token),
        ("coverUrl", CREATE_GROUP, of(name="G", coverUrl=url), alice.token),
        ("name", UPDATE_GROUP, of_group(name=bad), alice.token),
        ("description", UPDATE_GROUP, of_group(description=bad), alice.token),
        ("name", GUEST, of(name=bad), None),
        ("email", GUEST, of(name="Visitor", email=address), None),
        ("pageContext", GUEST, of(name="Visitor", pageContext=bad), None),
        ("password", RESET_PASSWORD, reset, None),
    ]
    for field, document, variables, token in cases:
        # when it is sent where text is stored
        body = await _call(app.http, document, variables, token)
        # then it is refused, naming the field
        assert _refusal(body) == ("BAD_USER_INPUT", field), (document, variables, body)
    # and nothing was stored
    assert await alice.call(PROFILE) == profile_before
    assert (await alice.call(MY_GROUP, id=group_id))["conversation"] == {
        "name": "Team",
        "description": None,
    }
    assert (await alice.call(INBOX))["conversations"]["edges"] == [{"node": {"id": group_id}}]
    for number in range(1, 5):
        taken = await alice.call(USERNAME_AVAILABLE, u=f"newbie{number}")
        assert taken["usernameAvailable"]["available"]


@pytest.mark.parametrize("bad", UNSTORABLE)
async def test_lookups_by_text_the_database_cannot_hold_find_nobody(
    app: RunningApp, bad: str
) -> None:
    # given alice, and an administrator
    alice = await register(app.http)
    await admin.create_admin(app.runtime, username="root", password=PASSWORD)
    login = {"input": {"login": "root", "password": PASSWORD}}
    root_token = (await data(app.http, LOGIN, login))["login"]["accessToken"]
    email = f"{alice.username}@example.com"
    # when her username, address, password or refresh token carries it, then nobody is found
    wrong_login = {"input": {"login": alice.username + bad, "password": PASSWORD}}
    assert _refusal(await _call(app.http, LOGIN, wrong_login))[0] == "UNAUTHENTICATED"
    wrong_password = {"input": {"login": alice.username, "password": PASSWORD + bad}}
    assert _refusal(await _call(app.http, LOGIN, wrong_password))[0] == "UNAUTHENTICATED"
    refresh = {"token": alice.refresh_token + bad}
    assert _refusal(await _call(app.http, REFRESH, refresh))[0] == "UNAUTHENTICATED"
    by_username = await _call(app.http, BY_USERNAME, {"u": alice.username + bad}, alice.token)
    assert _refusal(by_username) == ("NOT_FOUND", "username")
    search = await _call(app.http, SEARCH, {"q": alice.username + bad}, alice.token)
    assert search == {"data": {"searchUsers": []}}
    users = await _call(app.http, USERS, {"s": alice.username + bad}, root_token)
    assert users == {"data": {"users": {"edges": []}}}
    # and the password reset answers as for any address
    reset = await _call(app.http, REQUEST_RESET, {"email": email + bad})
    assert reset == {"data": {"requestPasswordReset": True}}
    reset_with = {"email": email + bad, "code": "123456", "password": PASSWORD}
    assert _refusal(await _call(app.http, RESET_PASSWORD, reset_with)) == (
        "BAD_USER_INPUT",
        "code",
    )
    # and alice signs in as before
    assert (await data(app.http, LOGIN, {"input": {"login": email, "password": PASSWORD}}))[
        "login"
    ]["user"]["id"] == alice.id


@pytest.mark.parametrize(
    "code",
    [*UNSTORABLE, pytest.param("١٢٣٤٥٦", id="arabic-indic-digits")],
)
async def test_codes_holding_such_text_or_non_ascii_digits_are_just_wrong(
    app: RunningApp, code: str
) -> None:
    # given alice, with an email code waiting and an authenticator app being enrolled
    alice = await register(app.http)
    await alice.call(ENROLL_TOTP)
    # when she sends such a code, then it is a wrong code like any other
    for document in (VERIFY_EMAIL, CONFIRM_TOTP):
        body = await _call(app.http, document, {"code": code}, alice.token)
        assert _refusal(body) == ("BAD_USER_INPUT", "code"), (document, body)
