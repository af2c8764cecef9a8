"""Password guessing from an attacker's side, against a real `chatr serve` (uvicorn) setup.

The attacker sends a fresh X-Forwarded-For with every attempt, or really has many addresses.
Neither gets more than the per-account allowance of wrong passwords, and behind a trusted
proxy each real client keeps its own per-address counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from email.message import Message

import pytest
import uvicorn

from chatr import cli
from chatr.cli import proxy_options
from chatr.infra import rate_limits
from chatr.settings import Settings
from tests.support.api import LOGIN, PASSWORD, register
from tests.support.servers import RunningApp, served_app
from tests.support.smtp_sink import SmtpSink

ALLOWANCE = rate_limits.LOGIN_ACCOUNT.limit.amount


def _serve(settings: Settings) -> AbstractAsyncContextManager[RunningApp]:
    """The app behind uvicorn configured exactly as `chatr serve` configures it."""
    return served_app(settings, **proxy_options(settings.trusted_proxies))


async def _attempt(
    app: RunningApp, login: str, password: str, *, forwarded_for: str
) -> tuple[str | None, str]:
    body = await app.http.post(
        "/graphql",
        json={"query": LOGIN, "variables": {"input": {"login": login, "password": password}}},
        headers={"X-Forwarded-For": forwarded_for},
    )
    answer = body.json()
    if answer.get("errors"):
        error = answer["errors"][0]
        return error["extensions"]["code"], error["message"]
    return None, ""


def _notices(smtp: SmtpSink, address: str) -> list[Message]:
    return [mail for mail in smtp.mail_to(address) if "locked" in str(mail["Subject"])]


async def _lock_notices(smtp: SmtpSink, address: str, *, at_least: int) -> list[Message]:
    async with asyncio.timeout(5):
        while len(_notices(smtp, address)) < at_least:
            await asyncio.sleep(0.02)
    return _notices(smtp, address)


@pytest.fixture
async def limited_settings(settings: Settings, database: str, smtp: SmtpSink) -> Settings:
    return settings.with_overrides(rate_limits=True, smtp_url=smtp.url)


@pytest.fixture
async def direct(limited_settings: Settings) -> AsyncIterator[RunningApp]:
    """Served with the defaults: no trusted proxies."""
    async with _serve(limited_settings) as app:
        yield app


@pytest.fixture
async def proxied(limited_settings: Settings) -> AsyncIterator[RunningApp]:
    """Served behind a trusted proxy on loopback (CHATR_TRUSTED_PROXIES=127.0.0.1)."""
    async with _serve(limited_settings.with_overrides(trusted_proxies=("127.0.0.1/32",))) as app:
        yield app


async def test_forged_forwarded_for_headers_do_not_buy_more_password_guesses(
    direct: RunningApp,
) -> None:
    # given a victim, and an attacker connecting directly who names a new address each time
    await register(direct.http, "victim")
    answers = [
        await _attempt(direct, "victim", f"Wrong-pass{i}!", forwarded_for=f"198.51.100.{i}")
        for i in range(30)
    ]
    # then no more than the allowance of guesses reached the password check
    checked = [code for code, _ in answers if code == "UNAUTHENTICATED"]
    assert len(checked) <= ALLOWANCE
    assert {code for code, _ in answers[ALLOWANCE:]} == {"RATE_LIMITED"}
    # and even the right password is refused now
    code, _ = await _attempt(direct, "victim", PASSWORD, forwarded_for="198.51.100.250")
    assert code == "RATE_LIMITED"


async def test_guessing_one_account_from_many_addresses_locks_it_and_mails_the_owner(
    proxied: RunningApp, smtp: SmtpSink
) -> None:
    # given a victim, and an attacker with a real new address (through the proxy) per guess
    await register(proxied.http, "owner")
    for i in range(ALLOWANCE):
        code, _ = await _attempt(proxied, "owner", "Wrong-pass1!", forwarded_for=f"203.0.113.{i}")
        assert code == "UNAUTHENTICATED"
    # when the next guess comes, from yet another address, even with the right password
    code, message = await _attempt(proxied, "Owner@Example.com", PASSWORD, forwarded_for="1.2.3.4")
    # then the account is locked, and the answer says so
    assert code == "RATE_LIMITED"
    assert "account is temporarily locked" in message
    # and the owner got a notice by mail (queued: it arrives shortly), one only
    assert len(await _lock_notices(smtp, "owner@example.com", at_least=1)) == 1
    await _attempt(proxied, "owner", PASSWORD, forwarded_for="1.2.3.5")
    await asyncio.sleep(0.3)
    assert len(_notices(smtp, "owner@example.com")) == 1


async def test_an_unknown_login_locks_alike_so_the_lock_reveals_no_account(
    proxied: RunningApp,
) -> None:
    answers = [
        await _attempt(proxied, "nobody_here", "Wrong-pass1!", forwarded_for=f"203.0.113.{i}")
        for i in range(ALLOWANCE + 1)
    ]
    assert [code for code, _ in answers] == ["UNAUTHENTICATED"] * ALLOWANCE + ["RATE_LIMITED"]
    assert "account is temporarily locked" in answers[-1][1]


async def test_behind_a_trusted_proxy_each_client_has_its_own_address_limit(
    proxied: RunningApp,
) -> None:
    # given one client behind the proxy that used up its address's attempts on other logins
    await register(proxied.http, "bystander")
    for i in range(rate_limits.LOGIN.limit.amount):
        await _attempt(proxied, f"guess{i}", "Wrong-pass1!", forwarded_for="203.0.113.66")
    code, message = await _attempt(proxied, "guess", "Wrong-pass1!", forwarded_for="203.0.113.66")
    assert code == "RATE_LIMITED" and "address" in message
    # when another client behind the same proxy signs in
    code, _ = await _attempt(proxied, "bystander", PASSWORD, forwarded_for="198.51.100.7")
    # then it is not held to the first client's counter
    assert code is None


async def test_a_correct_login_clears_the_count_of_earlier_wrong_passwords(
    proxied: RunningApp,
) -> None:
    await register(proxied.http, "forgetful")
    for round_ in range(2):
        for i in range(ALLOWANCE - 1):
            code, _ = await _attempt(
                proxied, "forgetful", "Wrong-pass1!", forwarded_for=f"203.0.{round_}.{i}"
            )
            assert code == "UNAUTHENTICATED"
        code, _ = await _attempt(proxied, "forgetful", PASSWORD, forwarded_for=f"198.51.{round_}.1")
        assert code is None


def test_chatr_serve_believes_forwarded_for_only_from_configured_proxies() -> None:
    assert proxy_options(()) == {"proxy_headers": False}
    assert proxy_options(("10.0.0.0/8",)) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.0/8"],
    }


@pytest.mark.parametrize(
    ("environment", "flag", "expected"),
    [
        ("", None, {"proxy_headers": False}),
        ("10.0.0.0/8", None, {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.0/8"]}),
        (
            "10.0.0.0/8",
            "192.0.2.1",
            {"proxy_headers": True, "forwarded_allow_ips": ["192.0.2.1/32"]},
        ),
    ],
)
def test_chatr_serve_hands_uvicorn_only_the_configured_proxies(
    monkeypatch: pytest.MonkeyPatch, environment: str, flag: str | None, expected: dict[str, object]
) -> None:
    started: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **options: started.update(options))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never-connected")
    monkeypatch.setenv("JWT_SECRET", "x" * 40)
    monkeypatch.setenv("CHATR_TRUSTED_PROXIES", environment)
    assert cli.main(["serve", *(["--trusted-proxies", flag] if flag else [])]) == 0
    assert {key: started.get(key) for key in expected} == expected


def test_a_trusted_proxy_that_is_not_an_address_stops_the_server() -> None:
    from chatr.settings import load_settings

    with pytest.raises(ValueError, match="not-an-ip"):
        load_settings(
            {
                "CHATR_TRUSTED_PROXIES": "10.0.0.1, not-an-ip",
                "CHATR_JWT_SECRET": "x",
                "DATABASE_URL": "postgresql://x/y",
            }
        )
    parsed = load_settings(
        {
            "CHATR_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
            "CHATR_JWT_SECRET": "x",
            "DATABASE_URL": "postgresql://x/y",
        }
    )
    assert parsed.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/16")
