"""Development limits are generous by default (someone exploring the API is not locked out
after the sixth sign-up), production ones strict; CHATR_RATE_LIMITS chooses explicitly."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatr.infra.rate_limits import RateLimiter
from chatr.settings import GENEROUS_RATE_LIMITS, Settings, load_settings
from tests.support.api import PASSWORD, graphql
from tests.support.servers import in_process_app

REGISTER = "mutation ($input: RegisterInput!) { register(input: $input) { accessToken } }"


def _environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {"CHATR_DATA_DIR": str(tmp_path), **variables}


def _limits_of(loaded: Settings, settings: Settings) -> Settings:
    """The test's database and broker with the rate limits `load_settings` chose."""
    return settings.with_overrides(
        rate_limits=loaded.rate_limits, rate_limit_overrides=loaded.rate_limit_overrides
    )


async def _sign_up_codes(settings: Settings, attempts: int) -> list[str]:
    """The outcome of each of `attempts` sign-ups from one address, every other one with a
    password that breaks the rule (rejected inputs count as attempts too)."""
    codes = []
    async with in_process_app(settings) as app:
        for number in range(attempts):
            password = PASSWORD if number % 2 else "short"
            body = await graphql(
                app.http,
                REGISTER,
                {"input": {"username": f"signup{number}", "password": password}},
            )
            errors = body.get("errors") or [{"extensions": {"code": "OK"}}]
            codes.append(errors[0]["extensions"]["code"])
    return codes


async def test_in_development_a_sixth_sign_up_from_one_address_goes_through(
    tmp_path: Path, settings: Settings, database: str
) -> None:
    development = load_settings(_environment(tmp_path))
    codes = await _sign_up_codes(_limits_of(development, settings), attempts=8)
    assert "RATE_LIMITED" not in codes
    assert codes == ["BAD_USER_INPUT", "OK"] * 4


async def test_in_production_the_sixth_sign_up_from_one_address_is_refused(
    tmp_path: Path, settings: Settings, database: str
) -> None:
    production = load_settings(_environment(tmp_path, CHATR_ENV="production"))
    codes = await _sign_up_codes(_limits_of(production, settings), attempts=6)
    assert codes == ["BAD_USER_INPUT", "OK"] * 2 + ["BAD_USER_INPUT", "RATE_LIMITED"]


@pytest.mark.parametrize(
    ("environment", "value", "enabled", "generous"),
    [
        ("development", None, True, True),
        ("production", None, True, False),
        ("development", "strict", True, False),
        ("development", "on", True, False),
        ("production", "generous", True, True),
        ("development", "off", False, False),
        ("production", "false", False, False),
    ],
)
def test_chatr_rate_limits_picks_strict_generous_or_none(
    tmp_path: Path, environment: str, value: str | None, enabled: bool, generous: bool
) -> None:
    variables = {"CHATR_ENV": environment}
    if value is not None:
        variables["CHATR_RATE_LIMITS"] = value
    loaded = load_settings(_environment(tmp_path, **variables))
    assert loaded.rate_limits is enabled
    assert loaded.rate_limit_overrides == (GENEROUS_RATE_LIMITS if generous else ())


def test_an_unknown_rate_limit_mode_stops_the_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CHATR_RATE_LIMITS"):
        load_settings(_environment(tmp_path, CHATR_RATE_LIMITS="lenient"))


def test_every_generous_limit_names_a_real_rule_and_a_typo_is_refused() -> None:
    RateLimiter(broker_url="memory://", key_prefix="t", overrides=dict(GENEROUS_RATE_LIMITS))
    with pytest.raises(ValueError, match="registr"):
        RateLimiter(broker_url="memory://", key_prefix="t", overrides={"registr": "1 per day"})
