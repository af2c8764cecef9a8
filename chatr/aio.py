"""`start_eagerly`: run a coroutine now, and only pay for a task if it has to wait.
`GroupCommit`: writes that queue while every slot of a pool of connections is busy share
the next statement, one per key.

`GroupCommit` serves the database's send statements, which run on pooled connections:
several at once, a lone write inline in its caller's task (a cancelled statement costs only
its connection), and a failed batch fails only its own writes. (The Redis lane's batching,
one round trip at a time on one connection, lives in its protocol: chatr.redis_lane.)

Fan-out writes one frame to a thousand sockets per event. Sending to a socket that is
writable never waits, so a task per send (or a queue and a writer task per socket) would be
pure overhead: a task switch per delivery costs about as much as the send itself. Python 3.12
has eager tasks for this; chatr supports 3.11, so this is the same idea in a few lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def start_eagerly(coroutine: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run `coroutine` up to its first real suspension, right now, in the caller's task.

    Returns None when it finished without waiting (exceptions propagate to the caller, as a
    plain `await` would), else a task that carries it on from where it waits.
    """
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_carry_on(coroutine, waiting_on))


async def _carry_on(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Drive a started coroutine the way an asyncio Task would.

    An asyncio coroutine suspends by yielding the Future it waits on (or None to just give
    way); it is resumed with `send(None)` once that Future is done and reads the result itself.
    """
    while True:
        cancelled = False
        try:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait((waiting_on,))
        except asyncio.CancelledError:
            cancelled = True
        try:
            if not cancelled:
                waiting_on = coroutine.send(None)
            elif waiting_on is not None and not waiting_on.done():
                # As Task.cancel() does: cancel what it waits on, and let it find out.
                waiting_on.cancel()
                waiting_on = coroutine.send(None)
            else:
                waiting_on = coroutine.throw(asyncio.CancelledError())
        except StopIteration:
            return


# -- group commit ------------------------------------------------------------------------


@dataclass(slots=True)
class _Queued(Generic[T, R]):
    key: Hashable
    item: T
    answer: asyncio.Future[R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Arrival:
    """A write announced to a group commit (`GroupCommit.coming`) that has not reached its
    `submit` yet."""

    __slots__ = ("commit", "pending")

    def __init__(self, commit: GroupCommit[Any, Any]) -> None:
        self.commit = commit
        self.pending = True


#: The write the current task announced, if any: `submit` finds it here, so the code between
#: the announcement and the submit (several calls down) need not carry it.
_arrival: contextvars.ContextVar[_Arrival | None] = contextvars.ContextVar(
    "group_commit_arrival", default=None
)


class GroupCommit(Generic[T, R]):
    """Concurrent writes that arrive while the database is busy share one statement.

    Why: a PostgreSQL statement costs the database a fixed price per execution and per commit
    (planning, executor start, locks, the commit record and its WAL flush) on top of the rows it
    writes; for chatr's send that fixed part was over half the database's CPU per message
    (bench/throughput.py). Batching k writes into one statement pays it once.

    How: at most `concurrency` batches run at once. A write that finds a free slot and nothing
    queued runs at once, alone, in its caller's own task: an idle server adds no wait and no task
    hop. Writes that arrive while every slot is busy queue; when a batch finishes, the queue's
    oldest writes go together in the next one, at most `limit` of them and at most one per key
    (for sends, the conversation: one statement can take a conversation's next seq only once, and
    a conversation's sends stay in the order they queued). The next batch runs in a task of its
    own, so no caller's answer waits for other callers' batches; its outcome goes to each waiting
    caller, who sees it as if its write had run alone (a result, or the exception to raise).

    Writes on their way: a caller may announce a write before it is ready (`with
    commit.coming():` around the work that precedes its `submit`, e.g. a send's rate-limit
    round trip). While a slot is free, the write that would start a batch waits for the
    announced ones until they all submitted or gave up, or for `hold` seconds at most, so
    writes that arrive moments apart share a statement instead of the first taking the slot
    alone and the rest queueing behind it for a whole statement (docs/architecture.md, "What
    p99 at 100 conversations is made of"). Nothing waits when nobody else is coming (one
    sender, an idle server), nor once `limit` writes are queued.

    Those tasks are not long-lived (one statement each) and cannot fail unseen: whatever a batch
    raises reaches every caller in it. A caller that gives up (cancelled) before its batch starts
    is left out of it; once its batch started, the write goes ahead and only the answer is lost,
    as for a single statement whose client hung up.

    `run_batch(items)` must return one outcome per item, in order: the item's result, or the
    exception its caller should get. Should it raise instead, every caller in the batch gets
    that error.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        concurrency: int,
        limit: int,
        hold: float = 0.0,
    ) -> None:
        if concurrency < 1 or limit < 1:
            raise ValueError("concurrency and limit must be at least 1")
        if hold < 0:
            raise ValueError("hold must not be negative")
        self._run_batch = run_batch
        self._concurrency = concurrency
        self._limit = limit
        self._hold = hold
        #: Announced writes that have not reached `submit` (nor given up) yet.
        self._coming = 0
        #: Set while a free slot waits for them; None once it timed out (until a batch starts).
        self._hold_timer: asyncio.TimerHandle | None = None
        self._held_long_enough = False
        #: Set by `stop`: whatever queues goes at once.
        self._draining = False
        self._running = 0
        self._queue: deque[_Queued[T, R]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Batches run and items written since start (for tests and the bench).
        self.batches = 0
        self.items = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @contextlib.contextmanager
    def coming(self) -> Iterator[None]:
        """Announce a write that this task will `submit` before the block ends (or not: a
        write that turns out not to need the group commit just leaves the block)."""
        if not self._hold:
            yield
            return
        arrival = _Arrival(self)
        self._coming += 1
        token = _arrival.set(arrival)
        try:
            yield
        finally:
            _arrival.reset(token)
            if arrival.pending:  # it gave up, or went another way
                self._arrived(arrival)
                self._start_batches()

    def _arrived(self, arrival: _Arrival) -> None:
        arrival.pending = False
        self._coming -= 1

    def _waiting_for_arrivals(self) -> bool:
        """Whether a free slot waits for announced writes; starts the hold's clock."""
        if (
            self._draining
            or self._held_long_enough
            or self._coming <= 0
            or len(self._queue) >= self._limit
        ):
            return False
        if self._hold_timer is None:
            self._hold_timer = asyncio.get_running_loop().call_later(
                self._hold, self._hold_timed_out
            )
        return True

    def _hold_timed_out(self) -> None:
        self._hold_timer = None
        self._held_long_enough = True
        self._start_batches()

    def _end_hold(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._held_long_enough = False

    async def submit(self, key: Hashable, item: T) -> R:
        """`item`'s result once its batch ran; raises what the batch runner gave for it."""
        arrival = _arrival.get()
        if arrival is not None and arrival.commit is self and arrival.pending:
            self._arrived(arrival)
        if (
            self._running < self._concurrency
            and not self._queue
            and not self._waiting_for_arrivals()
        ):
            self._end_hold()
            return await self._run_alone(item)
        queued: _Queued[T, R] = _Queued(key, item)
        self._queue.append(queued)
        self._start_batches()
        try:
            return await queued.answer
        except asyncio.CancelledError:
            if not queued.answer.done():
                queued.answer.cancel()  # still queued: its batch will leave it out
            raise

    async def _run_alone(self, item: T) -> R:
        self._running += 1
        try:
            (outcome,) = await self._run_batch([item])
        finally:
            self._finished(1)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _start_batches(self) -> None:
        while self._running < self._concurrency and self._queue:
            if self._waiting_for_arrivals():
                return
            self._end_hold()
            batch = self._take_batch()
            if not batch:
                return
            self._running += 1
            task = asyncio.create_task(self._run(batch), name="group-commit batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self) -> list[_Queued[T, R]]:
        """The oldest waiting writes, one per key, at most `limit`; the rest keep their
        places in the queue (in order)."""
        batch: list[_Queued[T, R]] = []
        keys: set[Hashable] = set()
        kept: deque[_Queued[T, R]] = deque()
        while self._queue and len(batch) < self._limit:
            queued = self._queue.popleft()
            if queued.answer.done():  # its caller gave up while it waited
                continue
            if queued.key in keys:
                kept.append(queued)
                continue
            keys.add(queued.key)
            batch.append(queued)
        kept.extend(self._queue)
        self._queue = kept
        return batch

    async def _run(self, batch: list[_Queued[T, R]]) -> None:
        try:
            outcomes: Sequence[R | Exception] = await self._run_batch([q.item for q in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except BaseException as error:
            for queued in batch:
                if not queued.answer.done():
                    if isinstance(error, asyncio.CancelledError):
                        queued.answer.cancel()
                    else:
                        queued.answer.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            for queued, outcome in zip(batch, outcomes, strict=True):
                if queued.answer.done():
                    continue
                if isinstance(outcome, Exception):
                    queued.answer.set_exception(outcome)
                else:
                    queued.answer.set_result(outcome)
        finally:
            self._finished(len(batch))

    def _finished(self, size: int) -> None:
        """A batch of `size` is done, however it ended: its slot goes to the queue."""
        self._running -= 1
        self.batches += 1
        self.items += size
        self._start_batches()

    async def stop(self) -> None:
        """Wait for the batches already running (their callers are waiting for them), and
        for those of the writes queued meanwhile: from now on nothing waits for arrivals."""
        self._draining = True
        self._end_hold()
        self._start_batches()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
