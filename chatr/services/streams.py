"""Live event streams with gap-free resume: subscribe first, replay from the log, then live.

Ordering of the steps is the whole guarantee:
1. attach a tap to the instance's live hub, which returns once its channels are live;
2. replay the log after the client's cursor (anything committed before step 1 is found here);
3. let the hub adopt the tap: it catches it up from where the replay ended and dispatches to
   it from then on, reading the log once per round for every tap on the instance. A lost or
   reordered announcement can only delay an event, never drop or duplicate it.
The log is only read below its horizon, where no transaction can still add to it
(chatr.infra.event_log), so "after the last position sent" can never skip an event that
commits later.

Without a renderer the stream yields each item and the caller renders it; with one (the
WebSocket fan-out), the renderer delivers replayed and live items itself and the stream only
ends, with the error that ended the tap if there was one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from chatr.infra import event_log
from chatr.infra.event_log import LoggedEvent
from chatr.infra.live import Outlet, ReadLog, Renderer, StreamItem, Tap, drain_log
from chatr.runtime import Runtime
from chatr.services import conversations

#: While the replay has not reached what was committed before it started (an older
#: transaction holds the horizon back), read again after this long, doubling to the maximum.
BACKLOG_RETRY_SECONDS = (0.002, 0.05)


async def _replay_then_live(
    rt: Runtime, tap: Tap, *, cursor: int | None, read: ReadLog
) -> AsyncGenerator[StreamItem, None]:
    """Replay, then hand the tap to the hub. `cursor` None: from now (see `event_log.Start`).

    The replay reads on until the horizon has passed every transaction that was running when
    it started, so history comes at the subscriber's pace rather than through its live
    queue, and a stream from now skips exactly what had committed before it.
    """
    hub = rt.live
    async with rt.db.autocommit_engine.connect() as connection:
        start = await event_log.starting_point(connection)
    from_now = cursor is None
    position = start.after if cursor is None else cursor
    horizon = start.after
    delay = BACKLOG_RETRY_SECONDS[0]
    while True:
        async for event in drain_log(read, position):
            position = event.id
            if from_now and start.committed_before(event.id):
                continue
            if tap.queued:
                yield event
                tap.acknowledged = event.id
            else:
                (await tap.renderer.render(event, [tap]))()
                if tap.ended:
                    break
        if tap.ended or max(horizon, position) >= start.settled:
            break
        await asyncio.sleep(delay)
        delay = min(2 * delay, BACKLOG_RETRY_SECONDS[1])
        async with rt.db.autocommit_engine.connect() as connection:
            horizon = await event_log.current_position(connection)
    # Everything below `settled` has been read: delivered, or (from now) skipped for good.
    cursor = max(position, start.settled) if from_now else position
    if not tap.ended:
        await hub.go_live(tap, cursor=cursor, read=read)
    if not tap.queued:
        await tap.until_ended()
        return
    while True:
        try:
            item = await tap.next_item()
        except StopAsyncIteration:
            return
        yield item
        if isinstance(item, LoggedEvent):
            tap.acknowledged = item.id


async def conversation_events(
    rt: Runtime,
    *,
    viewer_id: int,
    conversation_id: int,
    after_seq: int | None,
    renderer: Renderer | None = None,
    outlet: Outlet | None = None,
) -> AsyncGenerator[StreamItem, None]:
    """One conversation's events; with `after_seq`, first everything after that message.

    NOT_FOUND unless the viewer is in the conversation (chatr.services.conversations); a
    running stream ends when the viewer leaves or is removed (chatr.infra.live).
    """
    async with rt.db.reader() as session:
        await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )

    async def read(after: int) -> Sequence[LoggedEvent]:
        async with rt.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_conversation(
                connection, viewer_id=viewer_id, conversation_id=conversation_id, after=after
            )

    tap = Tap(
        viewer_id=viewer_id,
        conversation_id=conversation_id,
        queue_size=rt.settings.subscriber_queue_size,
        renderer=renderer,
        outlet=outlet,
    )
    async with rt.live.attach(tap):
        cursor = None
        if after_seq is not None:
            async with rt.db.reader() as session:
                cursor = await event_log.position_before_seq(
                    session, conversation_id=conversation_id, seq=after_seq
                )
        async for item in _replay_then_live(rt, tap, cursor=cursor, read=read):
            yield item


async def user_events(
    rt: Runtime,
    *,
    viewer_id: int,
    after: int | None,
    renderer: Renderer | None = None,
    outlet: Outlet | None = None,
) -> AsyncGenerator[StreamItem, None]:
    """Every event of every conversation the viewer is in, including ones they join later."""

    async def read(after_id: int) -> Sequence[LoggedEvent]:
        async with rt.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_user(connection, viewer_id=viewer_id, after=after_id)

    tap = Tap(
        viewer_id=viewer_id,
        conversation_id=None,
        queue_size=rt.settings.subscriber_queue_size,
        renderer=renderer,
        outlet=outlet,
    )
    async with rt.live.attach(tap):  # its user channel (new conversations) is live now
        async with rt.db.reader() as session:
            conversation_ids = await conversations.ids_for_member(session, user_id=viewer_id)
        await rt.live.follow(tap, conversation_ids)
        async for item in _replay_then_live(rt, tap, cursor=after, read=read):
            yield item
