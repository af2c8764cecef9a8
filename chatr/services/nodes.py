"""`node(id:)` and `nodes(ids:)`: any object by its global id, by the rule of its own field.

Each kind is fetched through the same service call (and so the same permission check) as
the field that shows that type on its own: a conversation only for a member (as
`conversation(id:)`), a message only while the viewer sees it (message_access), a session
only for its owner (`mySessions`), an account as administrators see it only for an
administrator (`users`), an upload only for its uploader while unused, an attachment only
through a message the viewer sees, a user to anyone signed in (`user(id:)`).

What those calls refuse (NOT_FOUND, FORBIDDEN) is answered as null: a client cannot tell an
object that does not exist from one that is not theirs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chatr.errors import BadUserInput, Forbidden, NotFound
from chatr.global_ids import Kind
from chatr.models import User
from chatr.runtime import Runtime
from chatr.services import (
    admin,
    attachments,
    auth,
    conversations,
    groups,
    message_access,
    uploads,
    users,
)
from chatr.services.auth import Viewer
from chatr.services.social import friends

#: The most ids one `nodes` call may ask for (each is looked up on its own).
MAX_NODES = 100


@dataclass(frozen=True)
class Account:
    """An account as administrators see it (the `UserAccount` type): its own class, so a
    `node` answer says which of the two types that show a user row it is."""

    user: User

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


Fetch = Callable[[Runtime, Viewer, int], Awaitable[object]]


async def _user(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return await users.profile(rt, user_id=pk)


async def _conversation(rt: Runtime, viewer: Viewer, pk: int) -> object:
    async with rt.db.reader() as session:
        return await conversations.get_for_viewer(session, viewer_id=viewer.id, conversation_id=pk)


async def _message(rt: Runtime, viewer: Viewer, pk: int) -> object:
    async with rt.db.reader() as session:
        found = await message_access.get_visible(session, viewer_id=viewer.id, message_id=pk)
    return found.message


async def _session(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return await auth.own_session(rt, viewer=viewer, session_id=pk)


async def _account(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return Account(await admin.account(rt, viewer_id=viewer.id, user_id=pk))


async def _upload(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return await uploads.ticket_for(rt, owner_id=viewer.id, upload_id=pk)


async def _attachment(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return await attachments.visible(rt, viewer_id=viewer.id, attachment_id=pk)


async def _friendship(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return await friends.one_of_mine(rt, viewer_id=viewer.id, friendship_id=pk)


async def _group_invite(rt: Runtime, viewer: Viewer, pk: int) -> object:
    return await groups.visible_invite(rt, viewer_id=viewer.id, invite_id=pk)


#: One fetcher per kind; a kind added to chatr.global_ids without one fails the tests.
FETCHERS: dict[Kind, Fetch] = {
    Kind.USER: _user,
    Kind.CONVERSATION: _conversation,
    Kind.MESSAGE: _message,
    Kind.SESSION: _session,
    Kind.USER_ACCOUNT: _account,
    Kind.UPLOAD: _upload,
    Kind.ATTACHMENT: _attachment,
    Kind.FRIENDSHIP: _friendship,
    Kind.GROUP_INVITE: _group_invite,
}


async def find(rt: Runtime, *, viewer: Viewer, kind: Kind, pk: int) -> object | None:
    """The object, or None when there is none or it is not the viewer's to see."""
    try:
        return await FETCHERS[kind](rt, viewer, pk)
    except (NotFound, Forbidden):
        return None


def require_bounded(count: int) -> None:
    """BAD_USER_INPUT (with `maxIds`) for more than MAX_NODES ids: checked before any id is
    even decoded."""
    if count > MAX_NODES:
        raise BadUserInput(
            f"Ask for at most {MAX_NODES} ids at a time.", field="ids", maxIds=MAX_NODES
        )


async def find_many(
    rt: Runtime, *, viewer: Viewer, refs: Sequence[tuple[Kind, int]]
) -> list[object | None]:
    """`find` for each of at most MAX_NODES ids, in order (see `require_bounded`)."""
    require_bounded(len(refs))
    return [await find(rt, viewer=viewer, kind=kind, pk=pk) for kind, pk in refs]
