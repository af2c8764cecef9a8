"""The I/O clients one app instance owns, built in the lifespan and handed to services."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chatr.db import Database
from chatr.pubsub import envelopes
from chatr.pubsub.broker import Broker, BrokerUnavailable
from chatr.settings import Settings

log = logging.getLogger("chatr.runtime")


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: Broker

    async def announce(self, channel: str, envelope: envelopes.Envelope) -> None:
        """Publish after commit. A failed publish is logged, never raised.

        The change is already durable; subscribers that missed the announcement resync from
        the database when their broker reconnects, so failing the mutation would only make the
        client retry something that already happened.
        """
        try:
            await self.broker.publish(channel, envelopes.encode(envelope))
        except BrokerUnavailable:
            log.warning("publish to %s failed; subscribers will resync", channel)
