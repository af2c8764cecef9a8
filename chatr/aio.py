"""`start_eagerly`: run a coroutine now, and only pay for a task if it has to wait.
`Batcher`: calls made while a round trip is in flight go together in the next one.

Fan-out writes one frame to a thousand sockets per event. Sending to a socket that is
writable never waits, so a task per send (or a queue and a writer task per socket) would be
pure overhead: a task switch per delivery costs about as much as the send itself. Python 3.12
has eager tasks for this; chatr supports 3.11, so this is the same idea in a few lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
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


class Batcher(Generic[T, R]):
    """Runs `submit`ted items in batches, one batch in flight at a time (group commit).

    `run(items)` does one round trip for all of them and answers each item's result or the
    exception for that item alone, in order; if it raises, every item of the batch, and every
    item submitted while it ran, gets that exception. An item submitted while a batch is in
    flight waits for it and goes in the next one, with everything else submitted meanwhile:
    under load N callers pay for one round trip (one write and one read on each side)
    instead of N, and a lone caller pays one task switch more than calling `run` itself.

    A caller that is cancelled leaves its item in the batch (if it was already sent it is
    not unsent); `aclose` cancels the batch in flight and fails the waiting items (a later
    `submit` starts afresh).
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 256,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def aclose(self) -> None:
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.cancel()
            await asyncio.wait([drainer])
        waiting, self._waiting = self._waiting, []
        _fail(waiting, RuntimeError("the batcher is closed"))

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    results = await self._run([item for item, _ in batch])
                except asyncio.CancelledError:
                    _fail(batch, ConnectionError("the batch was cancelled"))
                    raise
                except Exception as error:  # every caller of the batch gets it
                    # and so do those waiting meanwhile: the next round trip would most
                    # likely fail the same way, after as long (a hung server's timeout).
                    waiting, self._waiting = self._waiting, []
                    _fail([*batch, *waiting], error)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            if self._drainer is asyncio.current_task():
                self._drainer = None


def _fail(batch: Sequence[tuple[Any, asyncio.Future[Any]]], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
