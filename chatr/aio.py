"""`start_eagerly`: run a coroutine now, and only pay for a task if it has to wait.

Fan-out writes one frame to a thousand sockets per event. Sending to a socket that is
writable never waits, so a task per send (or a queue and a writer task per socket) would be
pure overhead: a task switch per delivery costs about as much as the send itself. Python 3.12
has eager tasks for this; chatr supports 3.11, so this is the same idea in a few lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


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
