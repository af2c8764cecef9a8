"""The per-process session cache: what it remembers, for how long, and what evicts it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from chatr.infra.session_cache import SessionCache
from chatr.security import AccessClaims


def test_a_live_session_is_trusted_only_for_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = SessionCache(ttl=10)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    cache.remember_live(session_id=1, user_id=7)
    assert cache.is_live(session_id=1, user_id=7)
    monkeypatch.setattr(time, "monotonic", lambda: now + 10.5)
    assert not cache.is_live(session_id=1, user_id=7)


def test_sessions_checked_together_are_checked_again_spread_over_half_the_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given 200 sessions found live at the same moment
    cache = SessionCache(ttl=10)
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    for session_id in range(200):
        cache.remember_live(session_id=session_id, user_id=session_id)

    def live_at(offset: float) -> int:
        monkeypatch.setattr(time, "monotonic", lambda: now + offset)
        return sum(cache.is_live(session_id=s, user_id=s) for s in range(200))

    # then every one is trusted for the first half of the TTL
    assert live_at(4.99) == 200
    # and they expire spread over the second half, not at once: in each of its five seconds
    # some go, none is left once the TTL is over
    still_live = [live_at(second) for second in (6, 7, 8, 9, 10.01)]
    assert 200 > still_live[0] > still_live[1] > still_live[2] > still_live[3] > 0
    assert still_live[4] == 0


def test_a_session_is_never_live_for_another_user() -> None:
    cache = SessionCache(ttl=10)
    cache.remember_live(session_id=1, user_id=7)
    assert not cache.is_live(session_id=1, user_id=8)


def test_forgetting_a_user_drops_all_of_their_sessions_only() -> None:
    cache = SessionCache(ttl=10)
    for session_id, user_id in ((1, 7), (2, 7), (3, 8)):
        cache.remember_live(session_id=session_id, user_id=user_id)
    cache.forget(user_id=7, session_id=None)
    assert not cache.is_live(session_id=1, user_id=7)
    assert not cache.is_live(session_id=2, user_id=7)
    assert cache.is_live(session_id=3, user_id=8)


def test_the_cache_is_bounded() -> None:
    cache = SessionCache(ttl=10, max_entries=3)
    for session_id in range(5):
        cache.remember_live(session_id=session_id, user_id=1)
        cache.remember_claims(f"t{session_id}", AccessClaims(1, session_id, datetime.now(UTC)))
    assert [cache.is_live(session_id=s, user_id=1) for s in range(5)] == [False, False] + [True] * 3
    assert cache.claims("t0") is None and cache.claims("t4") is not None
