"""Support-widget visitors: a 24-hour guest account to chat with support staff.

Guests have no password and no username of their choosing; they cannot be found by search,
befriended or messaged by anyone but staff (chatr.services.conversations.STAFF_ROLES).
"""

from __future__ import annotations

import secrets

from chatr.errors import BadUserInput
from chatr.models import User, UserKind
from chatr.runtime import Runtime
from chatr.services import auth, rate_limits, validation
from chatr.services.auth import IssuedTokens

GUEST_SESSION_SECONDS = 24 * 3600
MAX_PAGE_CONTEXT = 500


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
