"""Fixtures shared by the service-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatr.supervision import Supervisor


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    """A supervisor for the components a test starts; stopped (its tasks ended) afterwards."""
    instance = Supervisor()
    yield instance
    await instance.stop()
