"""Per-process memory of recently verified access tokens and live sessions.

Authenticating every HTTP request cost a signature check and a database round trip, about a
fifth of a sendMessage. A session found live is remembered for `ttl` seconds; revocations
are broadcast on the `sessions` channel and evict it on every instance at once, a broker
reconnect (announcements may have been missed) clears everything, and the TTL bounds the
rest. The instance that revokes evicts before it answers, so its own next request fails.

Each session is trusted for a random part of the TTL, between half of it and all of it. With
a fixed TTL, sessions first checked together (every client of an instance after a restart,
or a bench's senders) were re-checked together one TTL later, and again every TTL after
that, because each re-check renewed them at the same moment. In bench/throughput.py at 100
conversations that was a burst of slow sends every 10 s, up to ~110 ms against ~60 ms
otherwise, gone with the TTL set to an hour. Spread over half the TTL, the re-checks fall
apart after the first round and stay apart.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass

from chatr.security import AccessClaims

#: A live session is trusted for between (1 - TTL_JITTER) x ttl and ttl (see above).
TTL_JITTER = 0.5


@dataclass
class _LiveSession:
    user_id: int
    #: time.monotonic() after which it is checked again.
    trusted_until: float


class SessionCache:
    def __init__(self, *, ttl: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._claims: OrderedDict[str, AccessClaims] = OrderedDict()
        self._sessions: OrderedDict[int, _LiveSession] = OrderedDict()

    def claims(self, token: str) -> AccessClaims | None:
        """Claims of a token whose signature was already verified (expiry is the caller's)."""
        claims = self._claims.get(token)
        if claims is not None:
            self._claims.move_to_end(token)
        return claims

    def remember_claims(self, token: str, claims: AccessClaims) -> None:
        self._claims[token] = claims
        if len(self._claims) > self._max_entries:
            self._claims.popitem(last=False)

    def is_live(self, *, session_id: int, user_id: int) -> bool:
        entry = self._sessions.get(session_id)
        if entry is None or entry.user_id != user_id:
            return False
        if time.monotonic() > entry.trusted_until:
            del self._sessions[session_id]
            return False
        return True

    def remember_live(self, *, session_id: int, user_id: int) -> None:
        trusted_for = self._ttl * (1 - TTL_JITTER * random.random())
        self._sessions[session_id] = _LiveSession(user_id, time.monotonic() + trusted_for)
        self._sessions.move_to_end(session_id)
        if len(self._sessions) > self._max_entries:
            self._sessions.popitem(last=False)

    def forget(self, *, user_id: int, session_id: int | None) -> None:
        """Drop one session, or (session_id None) every session of the user."""
        if session_id is not None:
            self._sessions.pop(session_id, None)
            return
        for stale in [sid for sid, entry in self._sessions.items() if entry.user_id == user_id]:
            del self._sessions[stale]

    def clear(self) -> None:
        self._sessions.clear()
