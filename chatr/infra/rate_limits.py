"""Rate limits, counted in the shared store (Redis) so every instance sees the same counts.

Services call `hit` once per attempt, i.e. once per resolver call: ten aliased `login` fields
in one request are ten attempts, and batching cannot slip past either. Built on the `limits`
library (moving windows); the embedded default counts in memory.

While Redis is unreachable, limits are counted per instance, in memory, instead: a limit that
is N times looser across N instances for the length of an outage is far better than refusing
every login, sign-up and message with an internal error while the database (and so the app)
works. The switch is logged once per outage, counted in `metrics()`, and shown on `/readyz`
as the degraded `rate-limits` task, which also re-probes Redis in the background (with
backoff) and switches back when it answers. Requests never wait for a dead Redis beyond the
first one that finds it gone (bounded by `REDIS_TIMEOUT_SECONDS`), and a healthy Redis costs
at most one round trip per hit.

`hit`, the call every send makes, runs limits' moving-window script itself (the same script,
keys and arguments as `limits`, so `check`, `clear` and the refusal's window read what it
wrote), through the instance's `RedisCommands` (chatr.redis_lane), which the broker's
PUBLISHes share: the commands made while one is on its way to Redis go together in the next
pipeline, so under load many sends share one round trip, and each hit skips the `limits`
layers around the script.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import redis.asyncio as redis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from chatr.errors import RateLimited
from chatr.redis_lane import RedisCommands
from chatr.supervision import SupervisedTask, Supervisor

log = logging.getLogger("chatr.rate_limits")

T = TypeVar("T")

#: How long one Redis call of the limiter may take before it counts as an outage: a hung
#: Redis must not hang every login with it.
REDIS_TIMEOUT_SECONDS = 1.0
#: Connections to Redis per instance: a hit holds one for one round trip.
MAX_REDIS_CONNECTIONS = 32

#: limits' moving-window acquisition (limits/resources/redis/lua_scripts/
#: acquire_moving_window.lua, limits 5.x), run by `hit` itself: KEYS[1] is the prefixed key;
#: ARGV is (now, the limit's amount, its expiry in seconds, the cost). A list of the
#: timestamps of the last `limit` hits, newest first; true when this one fits.
ACQUIRE_MOVING_WINDOW = """
local timestamp = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])

if amount > limit then
    return false
end

local entry = redis.call('lindex', KEYS[1], limit - amount)

if entry and tonumber(entry) >= timestamp - expiry then
    return false
end
local entries = {}
for i = 1, amount do
    entries[i] = timestamp
end

for i=1,#entries,5000 do
    redis.call('lpush', KEYS[1], unpack(entries, i, math.min(i+4999, #entries)))
end
redis.call('ltrim', KEYS[1], 0, limit - 1)
redis.call('expire', KEYS[1], expiry)

return true
"""


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    message: str


#: Per client IP unless the name says otherwise.
REGISTER = Rule("register", parse("5 per 15 minutes"), "Too many sign-ups from this address.")
LOGIN = Rule("login", parse("10 per 15 minutes"), "Too many login attempts from this address.")
#: Per account (or, for a login no account has, per that login): wrong passwords before
#: sign-in to it is locked for the window, from every address. Addresses are cheap for an
#: attacker; the account is what they are after.
LOGIN_ACCOUNT = Rule(
    "login_account",
    parse("10 per 15 minutes"),
    "This account is temporarily locked after too many failed sign-ins.",
)
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
#: Per user, like SEND_MESSAGE: edits (each one is a durable event every member receives).
EDIT_MESSAGE = Rule(
    "edit_message", parse("60 per minute"), "You are editing messages too fast; slow down."
)
#: Per user, like SEND_MESSAGE: reactions set, changed or taken back.
REACTION = Rule("reaction", parse("120 per minute"), "You are reacting too fast; slow down.")
#: Per user, like SEND_MESSAGE: changes to their own inbox (mute, archive or pin a
#: conversation, star or unstar a message, delete one for themselves). Each is a durable
#: event their other devices receive, so a script flipping them costs the log and fan-out
#: like messages would.
INBOX_CHANGE = Rule(
    "inbox_change", parse("120 per minute"), "You are changing your inbox too fast; slow down."
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
#: Per user: uploads started (`createUpload`), whatever they are for.
UPLOAD = Rule("upload", parse("60 per 10 minutes"), "You are uploading too much at once; wait.")

#: Every rule, for checking that configured overrides name real ones.
RULES = (
    REGISTER,
    LOGIN,
    LOGIN_ACCOUNT,
    GUEST_SESSION,
    RESEND_CODE,
    TWO_FACTOR_FAILURES,
    SEND_MESSAGE,
    EDIT_MESSAGE,
    REACTION,
    INBOX_CHANGE,
    TWO_FACTOR_CODE_SENDS,
    PASSWORD_RESET,
    UPLOAD,
)


def _shared_storage(broker_url: str, key_prefix: str) -> tuple[RedisStorage, redis.ConnectionPool]:
    """Redis storage with bounded timeouts and one immediate retry (for a pooled connection
    that went stale when Redis restarted), instead of redis-py's default of three retries
    with backoff, which would make every call during an outage take seconds.

    At most MAX_REDIS_CONNECTIONS connections; a hit beyond them waits for one (at most
    REDIS_TIMEOUT_SECONDS, then it counts as an outage). redis-py's default pool opens one
    connection per concurrent call: 1,000 concurrent sends opened hundreds, each costing a
    TCP handshake, two CLIENT SETINFO round trips and a synchronous package-metadata lookup
    on the event loop, which stalled it for up to a second and timed out the hits in
    flight (a false outage)."""
    pool = redis.BlockingConnectionPool.from_url(
        broker_url,
        max_connections=MAX_REDIS_CONNECTIONS,
        timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        # Only a refused/reset connection is retried: a timeout means Redis hangs.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    storage = RedisStorage(
        "async+" + broker_url,
        key_prefix=key_prefix,
        implementation="redispy",
        wrap_exceptions=True,
        connection_pool=pool,  # type: ignore[arg-type]
    )
    return storage, pool


class RateLimiter:
    def __init__(
        self,
        *,
        broker_url: str,
        key_prefix: str,
        enabled: bool = True,
        overrides: Mapping[str, str] | None = None,
        probe_interval: float = 0.5,
        max_probe_interval: float = 5.0,
        commands: RedisCommands | None = None,
    ) -> None:
        """`overrides` replaces some rules' limits by name (settings), e.g. the send guard.

        With a `redis://` URL, counts are shared; `start()` must run for the limiter to come
        back to Redis after an outage (its probe runs under the instance's supervisor).
        `hit` runs on `commands`, the instance's shared lane to that Redis (closed by its
        owner); by default on one of its own.
        """
        self._enabled = enabled
        unknown = set(overrides or {}) - {rule.name for rule in RULES}
        if unknown:
            raise ValueError(f"no rate limit is named {', '.join(sorted(unknown))}")
        self._overrides = {name: parse(limit) for name, limit in (overrides or {}).items()}
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared_storage: RedisStorage | None = None
        self._pool: redis.ConnectionPool | None = None
        self._shared: MovingWindowRateLimiter | None = None
        self._key_prefix = key_prefix
        self._commands: RedisCommands | None = None
        self._owns_commands = False
        if broker_url.startswith(("redis://", "rediss://")):
            self._shared_storage, self._pool = _shared_storage(broker_url, key_prefix)
            self._shared = MovingWindowRateLimiter(self._shared_storage)
            # The storage's own client, as limits builds it: the same pool and retries.
            self._redis = redis.Redis(connection_pool=self._pool)
            self._acquire = self._redis.register_script(ACQUIRE_MOVING_WINDOW)
            self._owns_commands = commands is None
            self._commands = commands or RedisCommands(self._pool)
        self._probe_interval = probe_interval
        self._max_probe_interval = max_probe_interval
        #: Set while Redis is unreachable and limits are counted here.
        self._outage = asyncio.Event()
        self._record: SupervisedTask | None = None
        self._counters = {"outages": 0, "local_hits": 0}

    async def start(self, supervisor: Supervisor) -> None:
        """Run the outage probe under the instance's supervisor (shared limits only).

        Not critical: while it reports degraded, limits still hold (per instance), so the
        instance stays ready as far as the limiter is concerned.
        """
        if self._shared is not None:
            self._record = supervisor.spawn("rate-limits", self._probe_forever, critical=False)

    async def close(self) -> None:
        if self._commands is not None and self._owns_commands:
            await self._commands.aclose()
        if self._pool is not None:
            await self._pool.aclose()

    def metrics(self) -> dict[str, int]:
        return {"counting_locally": int(self._outage.is_set()), **self._counters}

    def _limit(self, rule: Rule) -> RateLimitItem:
        return self._overrides.get(rule.name, rule.limit)

    async def check(self, rule: Rule, key: str) -> None:
        """RATE_LIMITED if `key` has used up `rule`, without counting an attempt (for rules
        that only count failures)."""
        if not self._enabled:
            return
        limit = self._limit(rule)
        if not await self._decide(lambda limiter: limiter.test(limit, rule.name, key)):
            await self._refuse(rule, key)

    async def hit(self, rule: Rule, key: str) -> None:
        """Count one attempt; RATE_LIMITED (with retryAfter seconds) once over the limit."""
        if not self._enabled:
            return
        limit = self._limit(rule)
        allowed = await self._decide(
            lambda limiter: limiter.hit(limit, rule.name, key),
            shared=lambda: self._acquire_shared(limit, rule.name, key),
        )
        if not allowed:
            await self._refuse(rule, key)

    async def count_failure(self, rule: Rule, key: str) -> bool:
        """Count one failure against a rule that only counts failures (`check` guards it);
        True when this one used up the allowance, i.e. `key` is locked from now on."""
        if not self._enabled:
            return False
        limit = self._limit(rule)
        if not await self._decide(lambda limiter: limiter.hit(limit, rule.name, key)):
            return False  # already locked (a racing attempt got here first)
        return not await self._decide(lambda limiter: limiter.test(limit, rule.name, key))

    async def clear(self, rule: Rule, key: str) -> None:
        """Forget `key`'s count (a successful sign-in, a password reset)."""
        if self._enabled:
            limit = self._limit(rule)
            await self._decide(lambda limiter: limiter.clear(limit, rule.name, key))

    async def _refuse(self, rule: Rule, key: str) -> NoReturn:
        limit = self._limit(rule)
        stats = await self._decide(lambda limiter: limiter.get_window_stats(limit, rule.name, key))
        raise RateLimited(
            f"{rule.message} Try again later.",
            retry_after=max(1, math.ceil(stats.reset_time - time.time())),
        )

    async def _decide(
        self,
        ask: Callable[[MovingWindowRateLimiter], Awaitable[T]],
        *,
        shared: Callable[[], Awaitable[T]] | None = None,
    ) -> T:
        """Ask the shared store (`shared`, else `ask` of it), or memory while it is out (or
        on the embedded default)."""
        if self._shared is not None:
            if not self._outage.is_set():
                try:
                    return await (shared() if shared is not None else ask(self._shared))
                except StorageError as error:
                    self._fall_back(error)
            self._counters["local_hits"] += 1
        return await ask(self._local)

    async def _acquire_shared(self, limit: RateLimitItem, *identifiers: str) -> bool:
        """What limits' `MovingWindowRateLimiter.hit` decides on Redis, in a round trip
        shared with whatever else the instance sends Redis meanwhile (chatr.redis_lane); a
        hit whose script Redis lost goes again through the client, which loads it. A Redis
        failure is a StorageError, as limits raises it."""
        assert self._commands is not None
        key = f"{self._key_prefix}:{limit.key_for(*identifiers)}"
        arguments = (time.time(), limit.amount, limit.get_expiry(), 1)
        try:
            try:
                fits = await self._commands.execute(
                    "EVALSHA", self._acquire.sha, 1, key, *arguments
                )
            except NoScriptError:  # Redis restarted or flushed its scripts
                fits = await self._acquire(keys=[key], args=list(arguments))
        except (RedisError, ConnectionError) as error:
            raise StorageError(error) from error
        return bool(fits)

    def _fall_back(self, error: StorageError) -> None:
        if self._outage.is_set():
            return
        self._outage.set()
        self._counters["outages"] += 1
        reason = f"Redis unreachable ({error.storage_error!r}); rate limits counted per instance"
        log.warning("%s until it answers again", reason)
        if self._record is not None:
            self._record.degraded(reason)

    async def _reachable(self) -> bool:
        assert self._shared_storage is not None
        try:
            async with asyncio.timeout(2 * REDIS_TIMEOUT_SECONDS):
                return await self._shared_storage.check()
        except (TimeoutError, StorageError):
            return False

    async def _probe_forever(self) -> None:
        """While an outage lasts, ping Redis with backoff; switch back once it answers."""
        while True:
            await self._outage.wait()
            delay = self._probe_interval
            while True:
                await asyncio.sleep(delay)
                if await self._reachable():
                    break
                delay = min(delay * 2, self._max_probe_interval)
            self._outage.clear()
            log.info("Redis answers again; rate limits are shared again")
            if self._record is not None:
                self._record.recovered()
