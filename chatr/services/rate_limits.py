"""Rate limits, counted in the shared store (Redis) so every instance sees the same counts.

Services call `hit` once per attempt, i.e. once per resolver call: ten aliased `login` fields
in one request are ten attempts, and batching cannot slip past either. Built on the `limits`
library (moving windows); the embedded default counts in memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from chatr.errors import RateLimited


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    message: str


#: Per client IP unless the name says otherwise.
REGISTER = Rule("register", parse("5 per 15 minutes"), "Too many sign-ups from this address.")
LOGIN = Rule("login", parse("10 per 15 minutes"), "Too many login attempts from this address.")
GUEST_SESSION = Rule(
    "guest_session", parse("20 per 15 minutes"), "Too many chats started from this address."
)
RESEND_CODE = Rule("resend_code", parse("3 per 5 minutes"), "Too many codes requested.")
#: Per user: wrong second-factor codes before further attempts are locked for the window.
TWO_FACTOR_FAILURES = Rule(
    "two_factor", parse("6 per 15 minutes"), "Too many wrong codes; sign-in is locked for now."
)
#: Per user, across all their devices and conversations: a flood guard, far above typing speed.
SEND_MESSAGE = Rule(
    "send_message", parse("100 per minute"), "You are sending messages too fast; slow down."
)
#: Per user: sign-in codes sent by SMS or email (each login with the right password sends one).
TWO_FACTOR_CODE_SENDS = Rule(
    "two_factor_code_sends",
    parse("5 per 15 minutes"),
    "Too many sign-in codes sent to this account.",
)
PASSWORD_RESET = Rule(
    "password_reset", parse("3 per 15 minutes"), "Too many password resets from this address."
)


def _storage(broker_url: str, key_prefix: str) -> Storage:
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisStorage("async+" + broker_url, key_prefix=key_prefix, implementation="redispy")
    return MemoryStorage()


class RateLimiter:
    def __init__(
        self,
        *,
        broker_url: str,
        key_prefix: str,
        enabled: bool = True,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        """`overrides` replaces some rules' limits by name (settings), e.g. the send guard."""
        self._enabled = enabled
        self._limiter = MovingWindowRateLimiter(_storage(broker_url, key_prefix))
        self._overrides = {name: parse(limit) for name, limit in (overrides or {}).items()}

    def _limit(self, rule: Rule) -> RateLimitItem:
        return self._overrides.get(rule.name, rule.limit)

    async def check(self, rule: Rule, key: str) -> None:
        """RATE_LIMITED if `key` has used up `rule`, without counting an attempt (for rules
        that only count failures)."""
        if self._enabled and not await self._limiter.test(self._limit(rule), rule.name, key):
            await self._refuse(rule, key)

    async def hit(self, rule: Rule, key: str) -> None:
        """Count one attempt; RATE_LIMITED (with retryAfter seconds) once over the limit."""
        if not self._enabled:
            return
        if await self._limiter.hit(self._limit(rule), rule.name, key):
            return
        await self._refuse(rule, key)

    async def _refuse(self, rule: Rule, key: str) -> NoReturn:
        stats = await self._limiter.get_window_stats(self._limit(rule), rule.name, key)
        raise RateLimited(
            f"{rule.message} Try again later.",
            retry_after=max(1, math.ceil(stats.reset_time - time.time())),
        )
