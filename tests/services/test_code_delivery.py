"""Production never leaks codes: it refuses to start without real senders, and never logs one.

Development keeps logging codes: that is how the README's quick start lets a newcomer sign up.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from chatr.services import verification
from chatr.settings import Settings
from tests.support.api import data, register_with_phone
from tests.support.processes import embedded_environment, serving
from tests.support.servers import RunningApp, in_process_app
from tests.support.services import free_port

#: Every code chatr issues during these tests.
CODE = "424242"
REQUEST_RESET = "mutation R($email: String!) { requestPasswordReset(email: $email) }"


def _environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The environment of a fresh embedded-default chatr, plus `variables`."""
    return embedded_environment(tmp_path / "data", **variables)


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "chatr.cli", "serve"],
        [sys.executable, "-m", "uvicorn", "chatr.asgi:app"],
    ],
    ids=["chatr serve", "uvicorn chatr.asgi:app"],
)
def test_production_without_smtp_or_sms_refuses_to_start_with_a_clear_message(
    tmp_path: Path, command: list[str]
) -> None:
    env = _environment(tmp_path, CHATR_ENV="production")
    result = _run([*command, "--port", str(free_port())], env, tmp_path)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "CHATR_SMTP_URL and CHATR_SMS_WEBHOOK_URL are not set" in output
    assert "CHATR_I_ACCEPT_UNDELIVERED_CODES=1" in output
    assert "Traceback" not in output


def test_production_with_only_a_mail_server_still_names_the_missing_sms_webhook(
    tmp_path: Path,
) -> None:
    env = _environment(tmp_path, CHATR_ENV="production", CHATR_SMTP_URL="smtp://127.0.0.1:1")
    result = _run([sys.executable, "-m", "chatr.cli", "serve"], env, tmp_path)
    assert result.returncode == 2
    assert "CHATR_SMS_WEBHOOK_URL is not set" in result.stderr
    assert "CHATR_SMTP_URL" not in result.stderr


def test_the_opt_out_starts_production_without_senders(tmp_path: Path) -> None:
    port = free_port()
    env = _environment(tmp_path, CHATR_ENV="production", CHATR_I_ACCEPT_UNDELIVERED_CODES="1")
    command = [sys.executable, "-m", "chatr.cli", "serve", "--port", str(port)]
    with serving(command, port=port, env=env, cwd=tmp_path) as server:
        assert httpx.get(f"{server.http_url}/healthz", timeout=5).status_code == 200


async def _issue_every_kind_of_code(app: RunningApp) -> None:
    """Sign up with email and phone (two codes), then ask for a password reset (a third)."""
    await register_with_phone(app.http, "codes", "+15550001111")
    await data(app.http, REQUEST_RESET, {"email": "codes@example.com"})
    async with asyncio.timeout(10):
        while app.runtime.outbox.metrics()["sent"] < 3:
            await asyncio.sleep(0.02)


@pytest.fixture
def fixed_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "secrets", SimpleNamespace(randbelow=lambda _: int(CODE)))


async def test_no_code_ever_appears_in_the_log_in_production(
    settings: Settings, database: str, fixed_codes: None, caplog: pytest.LogCaptureFixture
) -> None:
    production = settings.with_overrides(environment="production", accept_undelivered_codes=True)
    with caplog.at_level(logging.DEBUG):
        async with in_process_app(production) as app:
            await _issue_every_kind_of_code(app)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert CODE not in logged
    # what is logged instead says the mail and the text went nowhere
    assert "mail to codes@example.com not sent" in logged
    assert "text to +15550001111 not sent" in logged


async def test_development_logs_codes_so_a_newcomer_can_sign_up(
    settings: Settings, database: str, fixed_codes: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with in_process_app(settings) as app:
            await _issue_every_kind_of_code(app)
    mail = [r.getMessage() for r in caplog.records if r.name == "chatr.mail"]
    texts = [r.getMessage() for r in caplog.records if r.name == "chatr.sms"]
    assert any(CODE in message for message in mail)
    assert any(CODE in message for message in texts)
