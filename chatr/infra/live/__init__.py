"""Live delivery on one instance: taps (live subscriptions), the hub that fans the event log
out to them, and their adoption between replay and live (see the modules' docstrings)."""

from chatr.infra.live.hub import LiveHub
from chatr.infra.live.tap import (
    QUEUE,
    Deliver,
    Outlet,
    ReadLog,
    Renderer,
    StreamItem,
    Tap,
    Typing,
    drain_log,
)

__all__ = [
    "QUEUE",
    "Deliver",
    "LiveHub",
    "Outlet",
    "ReadLog",
    "Renderer",
    "StreamItem",
    "Tap",
    "Typing",
    "drain_log",
]
