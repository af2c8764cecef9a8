"""Infrastructure: the I/O machinery one instance owns, below every domain service.

The durable event log and the live hub that reads it, rate limits, the session cache, the
presence store and the outbox with its mail and SMS senders. Nothing here knows a business
rule; services call it, and it never imports a service (tests/project/test_layering.py).
"""
