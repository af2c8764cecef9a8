"""Input types."""

from __future__ import annotations

import strawberry

from chatr.schema.types import GenderEnum


@strawberry.input(description="A new account.")
class RegisterInput:
    username: str = strawberry.field(description="3-20 letters, digits or _; case-insensitive.")
    password: str = strawberry.field(
        description="At least 8 characters, an upper-case letter and a symbol."
    )
    email: str | None = None
    phone: str | None = strawberry.field(
        default=None,
        description="International format, e.g. +15551234567; a code is texted to verify it.",
    )
    display_name: str | None = None
    first_name: str | None = strawberry.field(default=None, description="At most 80 characters.")
    last_name: str | None = strawberry.field(default=None, description="At most 80 characters.")
    gender: GenderEnum | None = None


@strawberry.input
class LoginInput:
    login: str = strawberry.field(description="Username or email address.")
    password: str


@strawberry.input(description="Send to a user (DM, created on first message) or a conversation.")
class SendMessageInput:
    body: str = strawberry.field(description="1-10,000 characters.")
    client_message_id: str = strawberry.field(
        description="Your idempotency key (1-64 chars): retrying the same send with it "
        "returns the original message; reusing it for another body or conversation is CONFLICT."
    )
    recipient_id: strawberry.ID | None = None
    conversation_id: strawberry.ID | None = None


@strawberry.input(description="A support-widget visitor starting a chat.")
class GuestSessionInput:
    name: str = strawberry.field(description="How support staff will address the visitor.")
    email: str | None = strawberry.field(default=None, description="For an offline reply.")
    page_context: str | None = strawberry.field(
        default=None, description="Where on the site the chat started (at most 500 characters)."
    )
