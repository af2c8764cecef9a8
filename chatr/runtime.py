"""The I/O clients one app instance owns, built in the lifespan and handed to services."""

from __future__ import annotations

from dataclasses import dataclass

from chatr.db import Database
from chatr.outbox import Outbox
from chatr.presence_store import PresenceStore
from chatr.pubsub import envelopes
from chatr.pubsub.announcer import Announcer
from chatr.pubsub.broker import Broker
from chatr.services.live import LiveHub
from chatr.services.rate_limits import RateLimiter
from chatr.services.session_cache import SessionCache
from chatr.settings import Settings
from chatr.supervision import Supervisor


@dataclass
class Runtime:
    settings: Settings
    db: Database
    broker: Broker
    announcer: Announcer
    sessions: SessionCache
    limits: RateLimiter
    outbox: Outbox
    presence: PresenceStore
    #: The instance's fan-out of live events to its subscriptions.
    live: LiveHub
    #: Every long-lived background task of this instance (shown on `/readyz`).
    supervisor: Supervisor

    async def announce(self, channel: str, envelope: envelopes.Envelope) -> None:
        """Publish after commit; never raises (failed announcements are retried)."""
        await self.announcer.announce(channel, envelope)
