"""Real-time delivery: a supervised local fan-out over Redis pub/sub (or in-process).

`channels` names the channels, `envelopes` encodes what is announced on them, and `broker`
moves them between instances.
"""

from __future__ import annotations

from chatr.pubsub.broker import (
    RESYNC,
    Broker,
    BrokerUnavailable,
    Message,
    Resync,
    Subscriber,
    SubscriberOverflow,
    Transport,
    create_broker,
)

__all__ = [
    "RESYNC",
    "Broker",
    "BrokerUnavailable",
    "Message",
    "Resync",
    "Subscriber",
    "SubscriberOverflow",
    "Transport",
    "create_broker",
]
