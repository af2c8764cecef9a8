"""Friends and blocking: requests, answers, blocks, DMs refused, live `friend` events."""

from __future__ import annotations

import asyncio

from chatr.pubsub import channels
from tests.support.api import Account
from tests.support.ids import pk
from tests.support.servers import RunningApp


async def until_listening(app: RunningApp, account: Account, *, sockets: int = 1) -> None:
    """Until `sockets` sockets of `account`, each with one `friendEvents`, listen live on `app`.

    Friend events are ephemeral: one published before a stream is live is lost by design, so
    tests wait for the stream first. Every authenticated socket also watches the user channel
    for revocations, hence two listeners per socket.
    """
    broker = app.runtime.broker
    channel = channels.user(pk(account.id))
    async with asyncio.timeout(10):
        while len(broker._channels.get(channel, ())) < 2 * sockets or channel not in broker._live:
            await asyncio.sleep(0.01)
