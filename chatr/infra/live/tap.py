"""A tap: one live subscription's end of the hub, and what it is handed (StreamItem).

Why a module of its own: the renderers (chatr.schema.broadcast) and the stream service only
need the tap and its protocols, not the hub's machinery.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatr.errors import ChatrError, SubscriberOverflowError
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent

log = logging.getLogger("chatr.services.live")


@dataclass(frozen=True, slots=True)
class Typing:
    conversation_id: int
    user_id: int
    typing: bool
    expires_at: float
    #: chatr.pubsub.envelopes.TypingActivity: typing, or recording a voice note.
    activity: str = "TYPING"


StreamItem = LoggedEvent | Typing
ReadLog = Callable[[int], Awaitable[Sequence[LoggedEvent]]]
#: Hands a rendered item to its taps; called in item order, after the rendering finished.
Deliver = Callable[[], None]


class Renderer(Protocol):
    """Turns one item into what each of `taps` receives.

    Called once per item for all the taps that share the renderer; the returned `Deliver` is
    called later, in item order, so renderings of successive items may overlap.
    """

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver: ...


class Outlet(Protocol):
    """A renderer's per-tap end (a socket writer, say)."""

    def bind(self, tap: Tap) -> None:
        """The tap this outlet serves (to end it when the client falls behind or goes)."""

    def close(self) -> None:
        """The tap ended: drop whatever is still pending."""


class Tap:
    """One live subscription on this instance: a viewer and one conversation, or all theirs.

    Without a renderer of its own, items queue here and the subscription's generator yields
    them; with one, the renderer delivers and the generator only waits for the end.
    """

    def __init__(
        self,
        *,
        viewer_id: int,
        conversation_id: int | None,
        queue_size: int,
        renderer: Renderer | None = None,
        outlet: Outlet | None = None,
    ) -> None:
        self.viewer_id = viewer_id
        #: None: every conversation the viewer is in (myEvents).
        self.conversation_id = conversation_id
        self.renderer: Renderer = renderer or QUEUE
        self.outlet = outlet
        #: The last durable event handed to the renderer (dispatch skips anything up to it).
        self.cursor = 0
        #: The last durable event that reached the client: where it resumes after a cut.
        self.acknowledged = 0
        self.live = False
        #: The hub's handover count when it went live: a round whose read began before then
        #: leaves it to the next one (see `LiveHub._recipients`).
        self.live_since = 0
        #: Conversations whose typing this tap hears.
        self.following: set[int] = set()
        self._queue_size = queue_size
        self._items: deque[StreamItem] = deque()
        self._wakeup = asyncio.Event()
        #: No more deliveries (read on every delivery: a plain attribute, not a property).
        self.ended = False
        self._overflowed = False
        self._error: ChatrError | None = None
        #: The hub's counters, once attached (overflows are counted there).
        self.counters: dict[str, int] | None = None
        if outlet is not None:
            outlet.bind(self)

    @property
    def queued(self) -> bool:
        """Whether items reach the client through this tap's own queue (no renderer)."""
        return self.renderer is QUEUE

    def end(self, error: ChatrError | None = None) -> None:
        """Stop delivering; the subscription then ends with `error` (or completes)."""
        if self.ended:
            return
        self.ended = True
        self._error = error
        if error is not None:
            self._items.clear()
        if self.outlet is not None:
            self.outlet.close()
        self._wakeup.set()

    def overflowed(self) -> None:
        """The client fell `queue_size` items behind: cut it (it resumes by cursor)."""
        if self.ended:
            return
        self._overflowed = True
        if self.counters is not None:
            self.counters["overflows"] += 1
        log.warning("cutting a live subscription that fell %d items behind", self._queue_size)
        self._items.clear()
        self.end()

    def offer(self, item: StreamItem) -> None:
        """Queue an item for the subscription's generator (the renderer-less path)."""
        if self.ended:
            return
        if len(self._items) >= self._queue_size:
            self.overflowed()
            return
        self._items.append(item)
        self._wakeup.set()

    async def next_item(self) -> StreamItem:
        """The next queued item; raises the ending error, or StopAsyncIteration once ended."""
        while True:
            if self._items:
                return self._items.popleft()
            if self.ended:
                self._raise_ending()
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    async def until_ended(self) -> None:
        """Wait for the end; raises its error, if any."""
        while not self.ended:
            self._wakeup.clear()
            await self._wakeup.wait()
        self._raise_ending()

    def _raise_ending(self) -> None:
        if self._overflowed:
            # Built now: `acknowledged` has moved on since the cut was decided.
            raise SubscriberOverflowError(
                "This subscription fell too far behind and was closed; "
                "resubscribe with the cursor of the last event you received.",
                cursor=str(self.acknowledged),
            )
        if self._error is not None:
            raise self._error


class _QueueRenderer:
    """The renderer-less path: each tap's generator gets the item itself."""

    async def render(self, item: StreamItem, taps: Sequence[Tap]) -> Deliver:
        def deliver() -> None:
            for tap in taps:
                tap.offer(item)

        return deliver


QUEUE = _QueueRenderer()


async def drain_log(read: ReadLog, after: int) -> AsyncIterator[LoggedEvent]:
    """Every logged event `read` finds after `after`, page by page, in id order."""
    while True:
        page = await read(after)
        for event in page:
            yield event
            after = event.id
        if len(page) < event_log.REPLAY_PAGE:
            return
