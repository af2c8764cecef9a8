"""Message tests sign up many people; what they may do does not depend on argon2's cost."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from chatr import security


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))
