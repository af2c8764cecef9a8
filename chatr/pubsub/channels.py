"""The one place that names pub/sub channels (the broker adds the deployment prefix)."""

from __future__ import annotations


def conversation(conversation_id: int) -> str:
    """Everything that happens in one conversation: durable announcements and typing."""
    return f"conversation:{conversation_id}"


def user(user_id: int) -> str:
    """Things addressed to one user wherever they are: new conversations, session revocation."""
    return f"user:{user_id}"


def sessions() -> str:
    """Session revocations, heard by every instance to keep its authentication cache honest."""
    return "sessions"


def presence(user_id: int) -> str:
    """One user's online/away/offline changes, for whoever watches them."""
    return f"presence:{user_id}"


def user_of(channel: str) -> int | None:
    """The user a `user(...)` channel belongs to; None for any other channel."""
    kind, _, key = channel.partition(":")
    return int(key) if kind == "user" and key.isdigit() else None
