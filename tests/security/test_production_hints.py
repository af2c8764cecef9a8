"""In production the API gives no schema hints: no "Did you mean" for any kind of name.

Each document below is answered with a suggestion in development (which proves it is one that
would leak a name) and without any in production: fields, arguments of fields and directives,
types, enum values and input fields, written in the document or passed as variables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatr.settings import Settings
from tests.support.api import graphql
from tests.support.servers import RunningApp, in_process_app

PRIVACY = (
    "mutation($input: PrivacySettingsInput!) "
    "{ updatePrivacySettings(input: $input) { joinedDate } }"
)

#: kind -> (document, variables): each misspells one name the schema would suggest.
MISSPELLINGS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "field": ("{ mee { id } }", None),
    "argument": ("{ conversations(frist: 1) { edges { cursor } } }", None),
    "directive argument": ("{ me @include(iff: true) { id } }", None),
    "type of a variable": ("query($a: Audiense) { me { id } }", None),
    "type of a fragment": ("{ me { ...F } } fragment F on Usr { id }", None),
    "enum value": (
        "mutation { updatePrivacySettings(input: {joinedDate: FRIENDZ}) { joinedDate } }",
        None,
    ),
    "input field": (
        "mutation { updatePrivacySettings(input: {joinedDat: FRIENDS}) { joinedDate } }",
        None,
    ),
    "enum value in a variable": (PRIVACY, {"input": {"joinedDate": "FRIENDZ"}}),
    "input field in a variable": (PRIVACY, {"input": {"joinedDat": "FRIENDS"}}),
}


def _messages(body: dict[str, Any]) -> list[str]:
    assert body.get("errors"), body
    return [error["message"] for error in body["errors"]]


@pytest.fixture
async def production_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    async with in_process_app(settings.with_overrides(environment="production")) as running:
        yield running


@pytest.mark.parametrize("kind", MISSPELLINGS)
async def test_a_misspelt_name_gets_a_suggestion_in_development(app: RunningApp, kind: str) -> None:
    document, variables = MISSPELLINGS[kind]
    body = await graphql(app.http, document, variables)
    assert any("Did you mean" in message for message in _messages(body)), body


@pytest.mark.parametrize("kind", MISSPELLINGS)
async def test_a_misspelt_name_gets_no_suggestion_in_production(
    production_app: RunningApp, kind: str
) -> None:
    document, variables = MISSPELLINGS[kind]
    body = await graphql(production_app.http, document, variables)
    messages = _messages(body)
    assert not any("Did you mean" in message for message in messages), messages
    assert all(error["extensions"]["code"] for error in body["errors"])
