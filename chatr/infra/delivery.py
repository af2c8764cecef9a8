"""What a sender of the outbox (mail, SMS) raises when a message could not go out this time.

Its own module, below the outbox and its senders alike: the senders raise it and the outbox
catches it, and neither has to import the other for it.
"""

from __future__ import annotations


class DeliveryFailed(Exception):
    """A sender could not hand a message over this time (worth retrying)."""
