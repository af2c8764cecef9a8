"""Live event streams with gap-free resume: subscribe first, replay from the log, then live.

Ordering of the steps is the whole guarantee:
1. subscribe to the channel(s) and wait until the broker confirms they are live;
2. read the log after the client's cursor (anything committed before step 1 is found here);
3. on every announcement (or RESYNC after a broker reconnect) read the log after the last
   event sent — not the announcement itself — so a lost or reordered announcement can only
   delay an event, never drop or duplicate it.
Event ids become visible in commit order (chatr.models.event), so "after the last id sent"
can never skip an event that commits later.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from chatr.errors import Forbidden, SubscriberOverflowError
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Message, Resync, Subscriber, SubscriberOverflow
from chatr.runtime import Runtime
from chatr.services import conversations, event_log
from chatr.services.event_log import LoggedEvent


@dataclass(frozen=True)
class Typing:
    conversation_id: int
    user_id: int
    typing: bool
    expires_at: float


StreamItem = LoggedEvent | Typing
ReadLog = Callable[[int], Awaitable[Sequence[LoggedEvent]]]


async def _drain_log(read: ReadLog, after: int) -> AsyncIterator[LoggedEvent]:
    """Every logged event after `after`, page by page, in id order."""
    while True:
        page = await read(after)
        for event in page:
            yield event
            after = event.id
        if len(page) < event_log.REPLAY_PAGE:
            return


def _may_have_news(
    item: Message | Resync, envelope: envelopes.Envelope | None, cursor: int
) -> bool:
    """A resync, or an announced event past the cursor (earlier ones were already replayed)."""
    if isinstance(item, Resync):
        return True
    return isinstance(envelope, envelopes.EventAnnounced) and envelope.event_id > cursor


async def _live(
    sub: Subscriber,
    *,
    viewer_id: int,
    cursor: int,
    read: ReadLog,
    on_joined: Callable[[int], Awaitable[None]] | None = None,
    on_removed: Callable[[int], Awaitable[None]] | None = None,
) -> AsyncIterator[StreamItem]:
    async for event in _drain_log(read, cursor):
        cursor = event.id
        yield event
    try:
        async for item in sub:
            envelope = None if isinstance(item, Resync) else envelopes.decode(item.data)
            if isinstance(envelope, envelopes.TypingChanged):
                if envelope.user_id != viewer_id and envelope.expires_at >= time.time() - 1:
                    yield Typing(
                        envelope.conversation_id,
                        envelope.user_id,
                        envelope.typing,
                        envelope.expires_at,
                    )
                continue
            if isinstance(envelope, envelopes.MembersRemoved):
                # Durable events already stop at the replay query's membership join; this
                # also stops typing, which is never re-checked per signal.
                if viewer_id in envelope.user_ids and on_removed is not None:
                    await on_removed(envelope.conversation_id)
                continue
            if isinstance(envelope, envelopes.ConversationJoined) and on_joined is not None:
                await on_joined(envelope.conversation_id)
            elif not _may_have_news(item, envelope, cursor):
                continue
            async for event in _drain_log(read, cursor):
                cursor = event.id
                yield event
    except SubscriberOverflow as error:
        raise SubscriberOverflowError(
            "This subscription fell too far behind and was closed; "
            "resubscribe with the cursor of the last event you received.",
            cursor=str(cursor),
        ) from error


async def conversation_events(
    rt: Runtime, *, viewer_id: int, conversation_id: int, after_seq: int | None
) -> AsyncIterator[StreamItem]:
    """One conversation's events; with `after_seq`, first everything after that message."""
    async with rt.db.reader() as session:
        await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=conversation_id
        )

    async def read(after: int) -> Sequence[LoggedEvent]:
        async with rt.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_conversation(
                connection, viewer_id=viewer_id, conversation_id=conversation_id, after=after
            )

    async with rt.broker.subscribe(channels.conversation(conversation_id)) as sub:
        async with rt.db.reader() as session:
            if after_seq is None:
                cursor = await event_log.current_position(session)
            else:
                cursor = await event_log.position_before_seq(
                    session, conversation_id=conversation_id, seq=after_seq
                )
        async for item in _live(
            sub, viewer_id=viewer_id, cursor=cursor, read=read, on_removed=_no_longer_a_member
        ):
            yield item


async def _no_longer_a_member(conversation_id: int) -> None:
    """Ends a `conversationEvents` stream whose viewer left or was removed."""
    raise Forbidden("You are no longer a member of this conversation.", field="conversationId")


async def user_events(
    rt: Runtime, *, viewer_id: int, after: int | None
) -> AsyncIterator[StreamItem]:
    """Every event of every conversation the viewer is in, including ones they join later."""

    async def read(after_id: int) -> Sequence[LoggedEvent]:
        async with rt.db.autocommit_engine.connect() as connection:
            return await event_log.list_for_user(connection, viewer_id=viewer_id, after=after_id)

    async with rt.broker.subscriber() as sub:

        async def follow(conversation_id: int) -> None:
            await sub.add(channels.conversation(conversation_id))

        async def unfollow(conversation_id: int) -> None:
            await sub.remove(channels.conversation(conversation_id))

        await sub.add(channels.user(viewer_id))
        async with rt.db.reader() as session:
            conversation_ids = await conversations.ids_for_member(session, user_id=viewer_id)
        for conversation_id in conversation_ids:
            await follow(conversation_id)
        async with rt.db.reader() as session:
            cursor = after if after is not None else await event_log.current_position(session)
        async for item in _live(
            sub,
            viewer_id=viewer_id,
            cursor=cursor,
            read=read,
            on_joined=follow,
            on_removed=unfollow,
        ):
            yield item
