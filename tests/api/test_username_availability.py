"""usernameAvailable: case-insensitive check with three free suggestions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.api import data, register
from tests.support.servers import RunningApp

AVAILABLE = """
query Available($u: String!) { usernameAvailable(username: $u) { available reason suggestions } }
"""
RULES = re.compile(r"^[A-Za-z0-9_]{3,20}$")


async def _check(app: RunningApp, username: str) -> dict[str, Any]:
    return (await data(app.http, AVAILABLE, {"u": username}))["usernameAvailable"]


@pytest.mark.smoke
async def test_free_username_is_available(app: RunningApp) -> None:
    assert await _check(app, "fresh_name") == {"available": True, "reason": None, "suggestions": []}


async def test_taken_username_is_unavailable_in_any_case_with_three_free_suggestions(
    app: RunningApp,
) -> None:
    # given
    await register(app.http, "Marina")
    # when
    result = await _check(app, "MARINA")
    # then
    assert result["available"] is False and result["reason"] == "TAKEN"
    suggestions = result["suggestions"]
    assert isinstance(suggestions, list) and len(suggestions) == 3
    assert len({s.lower() for s in suggestions}) == 3
    for suggestion in suggestions:
        assert RULES.fullmatch(suggestion)
        assert (await _check(app, suggestion))["available"] is True


@pytest.mark.parametrize("username", ["ab", "x" * 21, "with space", "émile"])
async def test_username_breaking_the_rules_is_invalid_with_valid_suggestions(
    app: RunningApp, username: str
) -> None:
    result = await _check(app, username)
    assert result["available"] is False and result["reason"] == "INVALID"
    assert all(RULES.fullmatch(s) for s in result["suggestions"])
    assert len(result["suggestions"]) == 3
