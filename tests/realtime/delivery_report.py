"""What an instance knows about a subscriber's missing event: for a failing fault test.

When a live subscriber waits in vain, the interesting facts are on the server: which events the
log holds and where (their positions), how far the hub believes it has dispatched, each tap's
cursors, the broker's and announcer's state. `delivery_report` gathers them in one text so a
rare failure explains itself instead of saying only "timed out".
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import text

from chatr.infra import event_log
from chatr.runtime import Runtime
from tests.support.ids import pk
from tests.support.ws import Feed


async def delivery_report(
    runtime: Runtime, *, conversation_id: str | int, received: Sequence[int], expected: int
) -> str:
    """A multi-line account of the conversation's log and the instance's live state."""
    missing = sorted(set(range(1, expected + 1)) - set(received))
    lines = [
        f"received {len(received)} of {expected} messages; missing seqs {missing[:20]}",
        f"received out of order or twice: {received != sorted(set(received))}",
    ]
    key = conversation_id if isinstance(conversation_id, int) else pk(conversation_id)
    async with runtime.db.autocommit_engine.connect() as connection:
        horizon = await event_log.current_position(connection)
        rows = (
            await connection.execute(
                text(
                    "SELECT xid, id, type, seq FROM events WHERE conversation_id = :c"
                    " ORDER BY xid DESC, id DESC LIMIT 8"
                ),
                {"c": key},
            )
        ).all()
        interesting = (
            await connection.execute(
                text(
                    "SELECT xid, id, type, seq FROM events WHERE conversation_id = :c"
                    " AND seq = ANY(:seqs) ORDER BY xid, id"
                ),
                {"c": key, "seqs": missing[:20]},
            )
        ).all()
    lines.append(f"horizon now: {event_log.split_position(horizon)}")
    lines.append("newest events (xid, id, type, seq): " + repr([tuple(r) for r in rows]))
    lines.append("missing events in the log: " + repr([tuple(r) for r in interesting]))
    hub = runtime.live
    position = hub._position
    lines.append(
        f"hub position {None if position is None else event_log.split_position(position)}, "
        f"announced {event_log.split_position(hub._announced)}, dirty {hub._dirty}, "
        f"last read {time.monotonic() - hub._last_read:.1f} s ago, metrics {hub.metrics()}"
    )
    for tap in hub._taps:
        outlet = tap.outlet
        lines.append(
            f"tap viewer {tap.viewer_id} conversation {tap.conversation_id}: "
            f"cursor {event_log.split_position(tap.cursor)}, "
            f"acknowledged {event_log.split_position(tap.acknowledged)}, live {tap.live}, "
            f"ended {tap.ended}, outlet backlog "
            f"{len(getattr(outlet, '_backlog', ()))}, draining "
            f"{getattr(outlet, '_drainer', None) is not None}"
        )
    lines.append(f"broker {runtime.broker.metrics()}")
    lines.append(f"announcer pending {runtime.announcer.pending}")
    return "\n".join(lines)


async def receive_messages(
    feed: Feed,
    seqs: list[int],
    total: int,
    *,
    runtime: Runtime,
    conversation_id: str | int,
    timeout: float = 30,
) -> list[int]:
    """Append the seqs of the messages `feed` receives (other events skipped) to `seqs` until
    it holds `total`; if one does not come within `timeout`, fail with the instance's
    `delivery_report`."""
    while len(seqs) < total:
        try:
            event = await feed.next_of("MessagePostedEvent", timeout=timeout)
        except TimeoutError:
            report = await delivery_report(
                runtime, conversation_id=conversation_id, received=seqs, expected=total
            )
            raise AssertionError(f"no message for {timeout} s\n{report}") from None
        seqs.append(event["message"]["seq"])
    return seqs
