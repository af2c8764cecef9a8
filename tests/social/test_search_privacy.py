"""searchUsers from a guesser's side: a name the person hides cannot be confirmed by search."""

from __future__ import annotations

import pytest

from tests.social.test_search import ACCEPT, REQUEST, _search, _verified
from tests.support.api import Account
from tests.support.servers import RunningApp

SET_NAMES = """
mutation Names($input: UpdateProfileInput!) { updateProfile(input: $input) { id } }
"""
SET_PRIVACY = """
mutation Privacy($input: PrivacySettingsInput!) {
  updatePrivacySettings(input: $input) { fullName }
}
"""


async def _named(app: RunningApp, username: str, *, full_name: str | None) -> Account:
    """A verified person called Zebulon Quaxley who shares their full name with `full_name`."""
    account = await _verified(app, username)
    await account.call(SET_NAMES, input={"firstName": "Zebulon", "lastName": "Quaxley"})
    if full_name is not None:
        await account.call(SET_PRIVACY, input={"fullName": full_name})
    return account


@pytest.mark.smoke
async def test_a_stranger_cannot_confirm_a_first_or_last_name_hidden_from_everyone(
    app: RunningApp,
) -> None:
    # given alice, who hides her full name from everybody, and mallory who guesses it
    await _named(app, "alice", full_name="NOBODY")
    mallory = await _verified(app, "mallory")
    # when mallory searches for the guessed first and last names
    # then search does not confirm either guess
    assert await _search(mallory, "zebulon") == []
    assert await _search(mallory, "Quaxley") == []
    # while what alice shows everyone (her username) is still found
    assert await _search(mallory, "alice") == [("alice", "NONE")]


async def test_a_name_shared_with_friends_is_searchable_by_friends_only(
    app: RunningApp,
) -> None:
    # given bob, who shares his full name with friends, his friend carol, and a stranger
    bob = await _named(app, "bob", full_name="FRIENDS")
    carol = await _verified(app, "carol")
    stranger = await _verified(app, "stranger")
    await carol.call(REQUEST, u=bob.id)
    await bob.call(ACCEPT, u=carol.id)
    # then carol finds him by name, the stranger does not
    assert await _search(carol, "zebulon") == [("bob", "FRIEND")]
    assert await _search(stranger, "zebulon") == []


async def test_a_name_shared_with_everyone_is_found_by_anyone(app: RunningApp) -> None:
    await _named(app, "dora", full_name=None)  # the default: names are public
    await _named(app, "eve", full_name="EVERYONE")
    anyone = await _verified(app, "anyone")
    assert await _search(anyone, "quaxley") == [("dora", "NONE"), ("eve", "NONE")]
