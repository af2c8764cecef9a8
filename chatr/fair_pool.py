"""A connection pool that serves waiting checkouts first come, first served.

SQLAlchemy's asyncio pool (`AsyncAdaptedQueuePool` over an `asyncio.Queue`) lets a new
checkout take an idle connection without looking at who is already waiting: a returned
connection wakes the oldest waiter, but any request that runs before that waiter resumes
takes the connection, and the waiter goes to the back of the line. Under a steady load above
the pool size (1,000 concurrent sends on a pool of 10) some waiters lost again and again until
the pool timeout answered them SERVICE_UNAVAILABLE, while the average wait was short: the
bench's p99 and its refusals, not its throughput, came from there (the same starvation as
SQLAlchemy issue 7679 with threads, and asyncpg issue 1247).

Here a returned connection is handed to the oldest waiter directly, and a checkout takes an
idle connection only when nobody is waiting.

The pool timeout is there to tell an unreachable or hung database quickly (chatr.db): a
checkout gives up once it waited that long *and* no statement succeeded meanwhile. While the
database keeps answering, a queue of checkouts is load, not an outage: a checkout then waits
up to BUSY_TIMEOUT before it gives up. (Refusing at the pool timeout under load made every
refused request's parsing, authentication and retry extra work for an already full
instance, so refusals fed themselves.) The owner reports successes with `answered()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection
from sqlalchemy.util import queue as sqla_queue

try:  # SQLAlchemy 2.1 names it `await_`; 2.0 only `await_only`.
    from sqlalchemy.util.concurrency import await_ as _await
except ImportError:  # pragma: no cover (SQLAlchemy 2.0)
    from sqlalchemy.util.concurrency import await_only as _await

T = TypeVar("T")

#: Seconds a checkout may wait in all while the database keeps answering statements.
BUSY_TIMEOUT = 10.0
#: Seconds a connection kept for the hot statements (`FairAsyncQueuePool.keep`) may sit
#: unused and still be taken again; after that it goes back through the pool.
KEEP_SECONDS = 1.0


class FairQueue(sqla_queue.AsyncAdaptedQueue[T]):
    """The pool's idle connections, handed out in the order checkouts asked for them.

    Invariant: connections sit idle only while nobody waits (`_waiters` holds only pending
    futures), so "nobody waits" is all a checkout needs to check before taking one.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[T]] = deque()
        #: When a statement last succeeded on a connection of this pool (monotonic clock).
        self.answered_at = -math.inf
        #: Set by the pool: gives back the connections it keeps checked out for the hot
        #: statements; True if it gave back any. Called (in the checkout's greenlet) before
        #: a checkout would wait, so a kept connection never makes anyone wait.
        self.give_back_kept: Callable[[], bool] | None = None

    def answered(self) -> None:
        self.answered_at = time.monotonic()

    def put_nowait(self, item: T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # (one that timed out may not have left the line yet)
                waiter.set_result(item)
                return
        super().put_nowait(item)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        # The pool returns connections without blocking; there is room for each by design.
        self.put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        if not self._waiters:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            if block and self.give_back_kept is not None and self.give_back_kept():
                with contextlib.suppress(asyncio.QueueEmpty):
                    return self._queue.get_nowait()
        if not block:
            raise sqla_queue.Empty()
        return _await(self._wait(timeout))

    async def _wait(self, patience: float | None) -> T:
        """Wait in line; `patience` is the pool timeout (see the module)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        self._waiters.append(waiter)
        timer: asyncio.TimerHandle | None = None
        if patience is not None:
            limit: float = patience  # (named again: narrowed for the closure)
            started = loop.time()

            def expire() -> None:
                nonlocal timer
                now = loop.time()
                if now - self.answered_at < limit and now - started < BUSY_TIMEOUT:
                    # Busy, not gone: wait on until it stops answering, or for BUSY_TIMEOUT.
                    later = min(self.answered_at + limit, started + BUSY_TIMEOUT)
                    timer = loop.call_at(max(later, now), expire)
                else:
                    waiter.cancel()

            timer = loop.call_later(patience, expire)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection just as this checkout was cancelled: pass it on.
                self.put_nowait(waiter.result())
                raise
            self._forget(waiter)
            task = asyncio.current_task()
            if timer is not None and task is not None and not task.cancelling():
                raise sqla_queue.Empty() from None  # the pool timeout, not a cancellation
            raise
        finally:
            if timer is not None:
                timer.cancel()
                # `expire` re-arms itself, so it refers to itself (and to the handle) through
                # cells: without this a reference cycle per waiting checkout, holding its
                # future, freed only when the cyclic collector runs.
                timer = None
                del expire

    def _forget(self, waiter: asyncio.Future[T]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` with a `FairQueue` (pass as `poolclass`).

    It can also keep a few connections checked out between the hot statements
    (chatr.infra.precompiled: the send), so that a stream of them skips SQLAlchemy's checkout
    and return (about a tenth of a send's CPU in `bench/send_cpu.py`). Kept connections are
    still the pool's: at most half of it, only while nobody waits (a checkout that would wait
    first takes them all back), only while in use at least every KEEP_SECONDS, and never one
    the pool would recycle on checkout (past its recycle age, or opened before an
    invalidation). `dispose` gives them back first.
    """

    _queue_class: Any = FairQueue

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (connection, when kept), the most recently kept last.
        self._kept: list[tuple[PoolProxiedConnection, float]] = []
        self._pool.give_back_kept = self._give_back_kept  # type: ignore[attr-defined]

    @property
    def kept(self) -> int:
        return len(self._kept)

    def kept_connections(self) -> list[PoolProxiedConnection]:
        """The connections kept checked out right now (most recently kept last)."""
        return [connection for connection, _ in self._kept]

    def keep(self, connection: PoolProxiedConnection) -> bool:
        """Keep `connection` (checked out, just used) for the next hot statement instead of
        returning it; False, and the caller returns it, while anyone waits for a connection,
        half the pool is kept already, or the pool would recycle it."""
        if (
            self._pool._waiters  # type: ignore[attr-defined]
            or len(self._kept) >= max(1, self.size() // 2)
            or not self._may_serve(connection)
        ):
            return False
        self._kept.append((connection, time.monotonic()))
        return True

    def take_kept(self) -> tuple[PoolProxiedConnection | None, list[PoolProxiedConnection]]:
        """The most recently kept connection if it may serve again, and the kept ones that
        may not (idle past KEEP_SECONDS, or due for recycling): the caller returns those to
        the pool (`close()`, in a greenlet)."""
        stale: list[PoolProxiedConnection] = []
        while self._kept:
            connection, since = self._kept.pop()
            if time.monotonic() - since > KEEP_SECONDS:
                stale.append(connection)  # every older one is idle longer still
                stale.extend(older for older, _ in self._kept)
                self._kept.clear()
                break
            if self._may_serve(connection):
                return connection, stale
            stale.append(connection)
        return None, stale

    def _may_serve(self, connection: PoolProxiedConnection) -> bool:
        """What SQLAlchemy checks on checkout before reusing a connection (`_ConnectionRecord
        .get_connection`): not invalidated, not past the recycle age, not opened before the
        pool was invalidated."""
        record = getattr(connection, "_connection_record", None)
        if record is None or not connection.is_valid:
            return False
        started: float = record.starttime
        if self._recycle > -1 and time.time() - started > self._recycle:
            return False
        return self._invalidate_time <= started

    def _give_back_kept(self) -> bool:
        """Return every kept connection to the pool (in a greenlet: a checkout's, or
        `dispose`'s)."""
        kept, self._kept = self._kept, []
        for connection, _ in kept:
            connection.close()
        return bool(kept)

    def dispose(self) -> None:
        self._give_back_kept()
        super().dispose()

    def answered(self) -> None:
        """A statement on one of this pool's connections succeeded: the database answers."""
        self._pool.answered()  # type: ignore[attr-defined]

    def lost(self, connection: PoolProxiedConnection, error: BaseException) -> None:
        """`connection` was found broken outside SQLAlchemy's own execution (see
        chatr.infra.precompiled): recycle every connection opened before it on its next
        checkout, as SQLAlchemy does when it sees a disconnect itself."""
        self._invalidate(connection, error, _checkin=False)
