"""Adoption: catching taps up from where their replay ended, then handing them to dispatch.

Why a task of its own: when the dispatcher caught every newcomer up itself, one read each
in series, a reconnect storm delayed live delivery for everyone, and one newcomer whose read
failed (or who hung up at the wrong moment) failed the dispatcher's whole round. Now the
adopter (supervised, next to the dispatcher) catches up everyone who arrived meanwhile with
ONE batched read of the log, the query the dispatcher uses for all live taps, delivering each
event once to every newcomer that may see it; live delivery goes on in between. If that read
fails, each newcomer is caught up on its own with its own read, a few at a time (as is one
whose cursor is far behind), and a failure there ends that tap only, with STREAM_FAILED and
its cursor.

Why no event falls between catch-up and dispatch: a complete batched read covers every event
up to the horizon it read (and a per-tap read everything up to the dispatch position it
started from). At the handover the hub moves its dispatch position back to where the tap is
covered if it was past it, and a dispatch round in flight (which may have read past where the
tap is covered) delivers nothing it read to the tap and does not move the position forward
again; re-reading that stretch costs one read for everyone, and taps that already had
those events skip them by their own cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chatr import db
from chatr.db import Database
from chatr.errors import ChatrError, ServiceUnavailable, StreamFailed
from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live.tap import ReadLog, StreamItem, Tap, drain_log

log = logging.getLogger("chatr.services.live")

#: Per-tap catch-ups (the fallback) reading at once: well below the database pool.
FALLBACK_CONCURRENCY = 4
#: Deliveries between two turns of the event loop while catching a crowd up: a reconnect
#: storm is hundreds of thousands of them, and live delivery must not wait for them all.
YIELD_EVERY = 500
#: Newcomers at most about this many events behind the dispatch position are caught up
#: together; those further behind read on their own.
BATCH_REACH = 10 * event_log.REPLAY_PAGE


@dataclass(slots=True)
class Newcomer:
    tap: Tap
    #: The last event it has; moves on as the catch-up delivers.
    cursor: int
    read: ReadLog
    done: asyncio.Future[None]


DeliverJobs = Callable[[Sequence[tuple[StreamItem, list[Tap]]]], Awaitable[None]]
HandOver = Callable[[Tap, int], None]
Follow = Callable[[Tap, int], object]
Position = Callable[[], int | None]


class Adopter:
    """Newcomers waiting to be caught up, and the loop that does it (run it supervised)."""

    def __init__(
        self,
        *,
        db: Database,
        deliver: DeliverJobs,
        hand_over: HandOver,
        follow: Follow,
        position: Position,
    ) -> None:
        self._db = db
        self._deliver = deliver
        self._hand_over = hand_over
        self._follow = follow
        self._position = position
        self._waiting: list[Newcomer] = []
        self._wakeup = asyncio.Event()
        #: Taps between `adopt` and their handover.
        self.adopting: set[Tap] = set()

    async def adopt(self, tap: Tap, *, cursor: int, read: ReadLog) -> None:
        """Returns once `tap` is live, or has ended (a failure ends it with its cursor)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(Newcomer(tap, cursor, read, done))
        self._wakeup.set()
        self.adopting.add(tap)
        try:
            await done
        finally:
            self.adopting.discard(tap)

    async def run(self) -> None:
        if self._waiting:
            self._wakeup.set()  # restarted by the supervisor with newcomers waiting
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._waiting = self._waiting, []
            try:
                await self._adopt(batch)
            finally:
                for newcomer in batch:
                    if not newcomer.done.done():  # the client may have closed meanwhile
                        newcomer.done.set_result(None)

    def stop(self) -> None:
        """Let everyone still waiting go (their taps are ended by the hub)."""
        for newcomer in self._waiting:
            if not newcomer.done.done():
                newcomer.done.set_result(None)
        self._waiting = []

    async def _adopt(self, batch: list[Newcomer]) -> None:
        newcomers = [n for n in batch if not n.tap.ended]
        if not newcomers:
            return
        # The batched read scans the log from the oldest cursor on: fine for the usual few
        # events, not for a subscription whose conversation has been quiet for ages. Those
        # read on their own, through their own (indexed) view of the log.
        head = self._position()
        near = [n for n in newcomers if head is None or _near(n.cursor, head)]
        far = [n for n in newcomers if head is not None and not _near(n.cursor, head)]
        slots = asyncio.Semaphore(FALLBACK_CONCURRENCY)
        await asyncio.gather(self._near(near, slots), *(self._alone(n, slots) for n in far))

    async def _near(self, newcomers: list[Newcomer], slots: asyncio.Semaphore) -> None:
        if not newcomers:
            return
        try:
            await self._together(newcomers)
        except Exception:
            log.warning(
                "batched catch-up of %d live subscriptions failed; one by one instead",
                len(newcomers),
                exc_info=True,
            )
            await asyncio.gather(*(self._alone(n, slots) for n in newcomers if not n.tap.ended))

    async def _together(self, newcomers: list[Newcomer]) -> None:
        """One read of the log for all of them; each event to every newcomer that may see it."""
        by_conversation: dict[int, list[Newcomer]] = {}
        by_user: dict[int, list[Newcomer]] = {}
        for newcomer in newcomers:
            tap = newcomer.tap
            if tap.conversation_id is None:
                by_user.setdefault(tap.viewer_id, []).append(newcomer)
            else:
                by_conversation.setdefault(tap.conversation_id, []).append(newcomer)
        after = min(n.cursor for n in newcomers)
        viewers = {n.tap.viewer_id for n in newcomers}
        async with self._db.autocommit_engine.connect() as connection:
            while True:
                page = await event_log.read_for_listeners(
                    connection,
                    after=after,
                    conversation_ids=list(by_conversation),
                    user_ids=list(by_user),
                    member_ids=viewers,
                )
                handed = 0
                for event in page.events:
                    members = page.may_see(event)
                    recipients = (
                        self._recipients(event, members, by_conversation, by_user)
                        if members
                        else []
                    )
                    if recipients:
                        await self._deliver([(event, recipients)])
                        handed += len(recipients)
                        if handed >= YIELD_EVERY:
                            handed = 0
                            await asyncio.sleep(0)  # let live delivery in between
                if page.events:
                    after = page.events[-1].id
                if page.complete:
                    break
        covered = max(after, page.horizon)
        for newcomer in newcomers:
            if not newcomer.tap.ended:
                self._hand_over(newcomer.tap, covered)

    def _recipients(
        self,
        event: LoggedEvent,
        members: frozenset[int],
        by_conversation: dict[int, list[Newcomer]],
        by_user: dict[int, list[Newcomer]],
    ) -> list[Tap]:
        recipients = []
        for newcomer in by_conversation.get(event.conversation_id, ()):
            if newcomer.cursor < event.id and newcomer.tap.viewer_id in members:
                newcomer.cursor = event.id
                recipients.append(newcomer.tap)
        for user_id in members:
            for newcomer in by_user.get(user_id, ()):
                if newcomer.cursor < event.id:
                    newcomer.cursor = event.id
                    recipients.append(newcomer.tap)
                    # Its typing too, once a member (not for an invitation, say).
                    if (
                        event.audience_id is None
                        and event.conversation_id not in newcomer.tap.following
                    ):
                        self._follow(newcomer.tap, event.conversation_id)
        return recipients

    async def _alone(self, newcomer: Newcomer, slots: asyncio.Semaphore) -> None:
        """Catch one newcomer up with its own read; a failure ends it with its cursor."""
        tap = newcomer.tap
        async with slots:
            try:
                position = self._position()
                if position is None:
                    async with self._db.autocommit_engine.connect() as connection:
                        position = await event_log.current_position(connection)
                async for event in drain_log(newcomer.read, newcomer.cursor):
                    await self._deliver([(event, [tap])])
                    if tap.ended:
                        return
                    newcomer.cursor = event.id
            except Exception as error:
                failed([tap], error, doing="catching up a live subscription")
                return
        if not tap.ended:
            self._hand_over(tap, max(newcomer.cursor, position))


def failed(taps: Sequence[Tap], error: BaseException, *, doing: str) -> None:
    """End `taps`, whose work (`doing`) raised `error`, each with the cursor to resume from.

    SERVICE_UNAVAILABLE (retryable; one warning) when the database is unreachable, else
    STREAM_FAILED (a bug; logged once with its traceback).
    """
    original = getattr(error, "original_error", None)  # a GraphQLError wraps the real one
    unavailable = db.is_unavailable(error) or (
        isinstance(original, BaseException) and db.is_unavailable(original)
    )
    if unavailable:
        log.warning("%s failed: the database is unavailable (%s)", doing, error)
    else:
        log.error("%s failed; ending it", doing, exc_info=error)
    for tap in taps:
        tap.end(_ending(tap, unavailable=unavailable))


def _ending(tap: Tap, *, unavailable: bool) -> ChatrError:
    if not unavailable:
        return StreamFailed(
            "The live stream failed; resubscribe with the last cursor you received.",
            cursor=str(tap.acknowledged),
        )
    ending = ServiceUnavailable(
        "The database is unavailable; resubscribe with the last cursor you received "
        f"in {db.RETRY_AFTER_SECONDS} s.",
        retry_after=db.RETRY_AFTER_SECONDS,
    )
    ending.extensions["cursor"] = str(tap.acknowledged)
    return ending


def _near(cursor: int, head: int) -> bool:
    """Whether `cursor` is within about BATCH_REACH events of `head` (by event id: a
    position's id part counts appended events, its transaction part does not)."""
    return abs(event_log.split_position(head)[1] - event_log.split_position(cursor)[1]) <= (
        BATCH_REACH
    )
