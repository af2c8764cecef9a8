"""The I/O clients one app instance owns, built in the lifespan and handed to services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatr.aio import GroupCommit
from chatr.db import Database
from chatr.infra.link_fetch import PreviewQueue
from chatr.infra.live import LiveHub
from chatr.infra.outbox import Outbox
from chatr.infra.presence_store import PresenceStore
from chatr.infra.rate_limits import RateLimiter
from chatr.infra.session_cache import SessionCache
from chatr.infra.storage import Storage
from chatr.pubsub import envelopes
from chatr.pubsub.announcer import Announcer
from chatr.pubsub.broker import Broker
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
    #: Where uploads' bytes live (local folder or S3).
    storage: Storage
    #: Messages waiting for their link preview on this instance.
    previews: PreviewQueue
    #: PostgreSQL: text sends on their way to the database, batched when they queue (its
    #: items and results are chatr.services.send_statements').
    sends: GroupCommit[Any, Any]

    async def announce(self, channel: str, envelope: envelopes.Envelope) -> None:
        """Publish after commit; never raises (failed announcements are retried)."""
        await self.announcer.announce(channel, envelope)
