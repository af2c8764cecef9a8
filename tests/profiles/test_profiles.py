"""Editing my profile and privacy settings, looking people up, and privacy applied everywhere."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from chatr.models import User
from chatr.models.base import utcnow
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    SEND_FRIEND_REQUEST,
    UNBLOCK_USER,
    Account,
    GraphQLError,
    graphql,
    register,
)
from tests.support.ids import Kind, missing, pk
from tests.support.servers import RunningApp

UPDATE_PROFILE = """
mutation Update($input: UpdateProfileInput!) {
  updateProfile(input: $input) {
    displayName firstName lastName gender avatarUrl coverUrl
  }
}
"""
SET_PRIVACY = """
mutation Privacy($input: PrivacySettingsInput!) {
  updatePrivacySettings(input: $input) {
    onlineStatus lastSeen phone email fullName gender joinedDate readReceipts
  }
}
"""
PROFILE = """
query Profile($id: ID!) {
  user(id: $id) {
    id username displayName firstName email avatarUrl coverUrl blocked
    privacySettings { email }
  }
}
"""
BY_USERNAME = "query ByName($u: String!) { userByUsername(username: $u) { id username } }"
#: Every place alice can appear to someone else, each asking for her email.
EVERYWHERE = """
query Everywhere($conversation: ID!, $q: String!) {
  conversation(id: $conversation) {
    peer { id email }
    members { user { id email } }
    messages(first: 10) { edges { node { sender { id email } } } }
  }
  friends { edges { node { user { id email } } } }
  searchUsers(query: $q) { user { id email } }
}
"""


async def _codes(account: Account, query: str, **variables: object) -> list[str]:
    with pytest.raises(GraphQLError) as failure:
        await account.call(query, **variables)
    return failure.value.codes


async def _verify_email(app: RunningApp, account: Account) -> None:
    async with app.runtime.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.id == pk(account.id)).values(email_verified_at=utcnow())
        )


@pytest.mark.smoke
async def test_user_edits_their_profile_and_clears_a_field_with_null(app: RunningApp) -> None:
    alice = await register(app.http)
    edited = await alice.call(
        UPDATE_PROFILE,
        input={
            "displayName": "Alice L.",
            "firstName": "Alice",
            "lastName": "Liddell",
            "gender": "FEMALE",
            "avatarUrl": "https://cdn.example.com/a.png",
            "coverUrl": "https://cdn.example.com/c.png",
        },
    )
    assert edited["updateProfile"] == {
        "displayName": "Alice L.",
        "firstName": "Alice",
        "lastName": "Liddell",
        "gender": "FEMALE",
        "avatarUrl": "https://cdn.example.com/a.png",
        "coverUrl": "https://cdn.example.com/c.png",
    }
    # left out: kept; null: cleared
    cleared = await alice.call(UPDATE_PROFILE, input={"lastName": None, "avatarUrl": None})
    assert cleared["updateProfile"] == {
        **edited["updateProfile"],
        "lastName": None,
        "avatarUrl": None,
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"firstName": "x" * 81}, "firstName"),
        ({"displayName": "   "}, "displayName"),
        ({"displayName": None}, "displayName"),
        ({"avatarUrl": "javascript:alert(1)"}, "avatarUrl"),
        ({"coverUrl": "ftp://example.com/c.png"}, "coverUrl"),
        ({"avatarUrl": "https://example.com/" + "a" * 1100}, "avatarUrl"),
    ],
)
async def test_invalid_profile_change_is_refused_and_changes_nothing(
    app: RunningApp, changes: dict[str, object], field: str
) -> None:
    alice = await register(app.http)
    before = (await alice.call(PROFILE, id=alice.id))["user"]
    # a valid change in the same call is not applied either
    with pytest.raises(GraphQLError) as failure:
        await alice.call(UPDATE_PROFILE, input={"firstName": "Changed", **changes})
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in failure.value.errors] == [
        ("BAD_USER_INPUT", field)
    ]
    assert (await alice.call(PROFILE, id=alice.id))["user"] == before


async def test_privacy_settings_change_one_at_a_time_and_only_i_see_them(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    settings = (await alice.call(SET_PRIVACY, input={"email": "FRIENDS"}))["updatePrivacySettings"]
    assert settings == {
        "onlineStatus": "EVERYONE",
        "lastSeen": "EVERYONE",
        "phone": "NOBODY",
        "email": "FRIENDS",
        "fullName": "EVERYONE",
        "gender": "EVERYONE",
        "joinedDate": "EVERYONE",
        "readReceipts": "EVERYONE",
    }
    settings = (await alice.call(SET_PRIVACY, input={"gender": "NOBODY"}))["updatePrivacySettings"]
    assert (settings["email"], settings["gender"]) == ("FRIENDS", "NOBODY")
    assert (await alice.call(PROFILE, id=alice.id))["user"]["privacySettings"] == {
        "email": "FRIENDS"
    }
    assert (await bob.call(PROFILE, id=alice.id))["user"]["privacySettings"] is None
    assert await _codes(alice, SET_PRIVACY, input={"email": None}) == ["BAD_USER_INPUT"]


async def test_people_are_found_by_id_or_username_and_unknown_ones_are_not_found(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    assert (await bob.call(BY_USERNAME, u=alice.username.upper()))["userByUsername"] == {
        "id": alice.id,
        "username": alice.username,
    }
    assert await _codes(bob, BY_USERNAME, u="nobody_here") == ["NOT_FOUND"]
    assert await _codes(bob, PROFILE, id=missing(Kind.USER)) == ["NOT_FOUND"]
    anonymous = await graphql(app.http, PROFILE, {"id": alice.id})
    assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]


async def test_a_privacy_setting_holds_in_every_place_the_user_is_shown(app: RunningApp) -> None:
    # given alice shares her email with friends only; bob is her friend, carol is not
    alice, bob, carol = [await register(app.http, f"privy{name}") for name in ("al", "bo", "ca")]
    for account in (alice, bob, carol):
        await _verify_email(app, account)
    await alice.call(SET_PRIVACY, input={"email": "FRIENDS"})
    await bob.call(SEND_FRIEND_REQUEST, u=alice.id)
    await alice.call(ACCEPT_FRIEND_REQUEST, u=bob.id)
    to_bob = await alice.send("hello bob", to=bob)
    to_carol = await alice.send("hello carol", to=carol)

    async def alices_emails(viewer: Account, conversation_id: str) -> list[str | None]:
        result = await viewer.call(EVERYWHERE, conversation=conversation_id, q="privyal")
        conversation = result["conversation"]
        shown = [conversation["peer"]]
        shown += [member["user"] for member in conversation["members"]]
        shown += [edge["node"]["sender"] for edge in conversation["messages"]["edges"]]
        shown += [edge["node"]["user"] for edge in result["friends"]["edges"]]
        shown += [match["user"] for match in result["searchUsers"]]
        return [user["email"] for user in shown if user["id"] == alice.id]

    # then bob sees it everywhere (peer, member, sender, friend, search result)
    assert (
        await alices_emails(bob, to_bob["conversationId"]) == [alice.username + "@example.com"] * 5
    )
    # and carol nowhere (peer, member, sender, search result; alice is not her friend)
    assert await alices_emails(carol, to_carol["conversationId"]) == [None] * 4


async def test_blocked_user_sees_no_profile_details_until_unblocked(app: RunningApp) -> None:
    alice, dave = await register(app.http), await register(app.http)
    await alice.call(
        UPDATE_PROFILE,
        input={
            "firstName": "Alice",
            "avatarUrl": "https://cdn.example.com/a.png",
            "coverUrl": "https://cdn.example.com/c.png",
        },
    )
    await alice.call(SET_PRIVACY, input={"email": "EVERYONE"})
    visible = {
        "id": alice.id,
        "username": alice.username,
        "displayName": alice.username,
        "firstName": "Alice",
        "email": f"{alice.username}@example.com",
        "avatarUrl": "https://cdn.example.com/a.png",
        "coverUrl": "https://cdn.example.com/c.png",
        "blocked": False,
        "privacySettings": None,
    }
    assert (await dave.call(PROFILE, id=alice.id))["user"] == visible
    # when alice blocks dave, each sees only the other's name and that they are blocked
    await alice.call(BLOCK_USER, u=dave.id)
    hidden = {**visible, "firstName": None, "email": None, "avatarUrl": None, "coverUrl": None}
    assert (await dave.call(PROFILE, id=alice.id))["user"] == {**hidden, "blocked": True}
    assert (await alice.call(PROFILE, id=dave.id))["user"]["blocked"] is True
    # and unblocking restores what she shares
    await alice.call(UNBLOCK_USER, u=dave.id)
    assert (await dave.call(PROFILE, id=alice.id))["user"] == visible


REGISTER_WITH_PROFILE = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { user { username firstName lastName gender } }
}
"""


async def test_registration_takes_names_and_gender(app: RunningApp) -> None:
    details = {"firstName": "Ada", "lastName": "Lovelace", "gender": "PREFER_NOT_TO_SAY"}
    body = await graphql(
        app.http,
        REGISTER_WITH_PROFILE,
        {"input": {"username": "ada", "password": "Secret-pass1", **details}},
    )
    assert body["data"]["register"]["user"] == {"username": "ada", **details}


async def test_registration_with_an_invalid_name_stores_no_account(app: RunningApp) -> None:
    body = await graphql(
        app.http,
        REGISTER_WITH_PROFILE,
        {"input": {"username": "longname", "password": "Secret-pass1", "lastName": "x" * 81}},
    )
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "lastName")
    ]
    again = await graphql(
        app.http,
        REGISTER_WITH_PROFILE,
        {"input": {"username": "longname", "password": "Secret-pass1"}},
    )
    assert again["data"]["register"]["user"]["username"] == "longname"
