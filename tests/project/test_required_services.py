"""The suite fails (never skips) when PostgreSQL or Redis is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
DATABASE_TEST = "tests/api/test_auth.py::test_me_is_null_without_a_token"


@pytest.mark.parametrize(
    ("variable", "url", "message"),
    [
        ("CHATR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:{port}/test", "PostgreSQL"),
        ("CHATR_TEST_REDIS_URL", "redis://127.0.0.1:{port}/0", "Redis"),
    ],
)
def test_suite_fails_loudly_when_a_service_is_unreachable(
    variable: str, url: str, message: str
) -> None:
    env = {**os.environ, "CI": "true", variable: url.format(port=free_port())}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", DATABASE_TEST, "-p", "no:cacheprovider", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, result.stdout
    assert f"{message} is required" in result.stdout
    assert "skipped" not in result.stdout
