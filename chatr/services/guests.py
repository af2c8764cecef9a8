"""Support-widget visitors: a 24-hour guest account to chat with support staff.

Guests have no password and no username of their choosing; they cannot be found by search,
befriended or messaged by anyone but staff (chatr.services.conversations.STAFF_ROLES).

What a guest session may do at all is one explicit allow-list, `GUEST_ALLOWED`: the support
widget's needs and nothing else. Every root field of the API is checked against it before it
runs (`ensure_allowed`, wired in by chatr.schema.guest_scope), so a field added later is
closed to guests until someone decides otherwise here.
"""

from __future__ import annotations

import secrets

from chatr.errors import BadUserInput, Forbidden
from chatr.infra import rate_limits
from chatr.models import User, UserKind
from chatr.runtime import Runtime
from chatr.services import auth, validation
from chatr.services.auth import IssuedTokens, Viewer

GUEST_SESSION_SECONDS = 24 * 3600
MAX_PAGE_CONTEXT = 500

#: The root fields (queries, mutations, subscriptions, by GraphQL name) a guest may use: its
#: own profile, its support conversations (read, write, edit and unsend its own messages,
#: react, live events, typing, receipts), and keeping or ending its session. Everything else
#: is FORBIDDEN for a guest.
GUEST_ALLOWED = frozenset(
    {
        # its own profile, read-only
        "me",
        # its support conversations
        "conversations",
        "conversation",
        "sendMessage",
        # and, like any member, changing their own messages and reacting
        "editMessage",
        "unsendMessage",
        "reactToMessage",
        "markRead",
        "markDelivered",
        "setTyping",
        "conversationEvents",
        "myEvents",
        # its session
        "refreshToken",
        "logout",
    }
)


def ensure_allowed(viewer: Viewer | None, operation: str) -> None:
    """FORBIDDEN when a guest asks for a root field that is not in `GUEST_ALLOWED`."""
    if viewer is not None and viewer.guest and operation not in GUEST_ALLOWED:
        raise Forbidden(
            f"Guest sessions cannot use {operation}: they can only chat with support.",
            reason=GUEST_SCOPE,
        )


#: `extensions.reason` of that FORBIDDEN.
GUEST_SCOPE = "GUEST_SCOPE"


async def start(
    rt: Runtime,
    *,
    name: str,
    email: str | None,
    page_context: str | None,
    client_ip: str,
    device_label: str | None,
) -> IssuedTokens:
    await rt.limits.hit(rate_limits.GUEST_SESSION, client_ip)
    name = validation.text(name, field="name").strip()
    if not 1 <= len(name) <= 80:
        raise BadUserInput("Name must be 1-80 characters.", field="name")
    validation.not_reserved(name, field="name")
    info: dict[str, str] = {}
    if email:
        info["email"] = validation.email(email)
    if page_context:
        validation.text(page_context, field="pageContext")
        if len(page_context) > MAX_PAGE_CONTEXT:
            raise BadUserInput(
                f"pageContext is at most {MAX_PAGE_CONTEXT} characters.", field="pageContext"
            )
        info["pageContext"] = page_context
    username = f"guest_{secrets.token_hex(6)}"
    user = User(
        kind=UserKind.GUEST,
        username=username,
        username_key=username,
        display_name=name,
        guest_info=info,
        privacy={},
    )
    async with rt.db.session() as session, session.begin():
        session.add(user)
    return await auth.start_session(
        rt, user=user, device_label=device_label, ttl_seconds=GUEST_SESSION_SECONDS
    )
