"""Groups: creation, details, invitations, roles, leaving and removal, with system messages.

Every membership change runs in one transaction that first locks the group's conversation row
(SELECT … FOR NO KEY UPDATE), the same lock a send takes to hand out a seq. Two admins kicking at
once, or the owner leaving while someone promotes, therefore run one after the other, and the
invariant "exactly one OWNER while the group exists" holds. The change and its system
messages (kind SYSTEM, with the next seqs) commit together; the events are appended last, as
chatr.infra.event_log requires, and announced after commit like any message.

A membership row is deleted when someone declines, leaves or is removed, so every query that
joins on accepted membership (history, receipts, typing, the replay of live streams) stops
serving that person at once. Live streams also hear `MembersRemoved` and end (see
chatr.services.streams).

Whoever is not in the group (a stranger, a former member) is answered like everywhere else:
NOT_FOUND, as for a group that does not exist (chatr.services.conversations.require_accepted).
FORBIDDEN is for those who see the group but may not do this: a plain member trying what only
the owner or an admin may, an invitee using the group before accepting.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatr.errors import BadUserInput, Forbidden, NotFound
from chatr.infra import event_log
from chatr.models import (
    Conversation,
    ConversationKind,
    EventType,
    MemberRole,
    Membership,
    MembershipState,
    Message,
    MessageKind,
    User,
    UserKind,
)
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime
from chatr.services import (
    accounts,
    conversation_deletion,
    conversations,
    inbox,
    validation,
)
from chatr.services.conversations import STAFF_ROLES
from chatr.services.social import blocks

#: Accepted and invited together; the fan-out is tested with fewer, the design aims at this.
MAX_MEMBERS = 1000
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_URL = 1024
#: Roles that may change details, invite and remove plain members.
MANAGERS = frozenset({MemberRole.OWNER, MemberRole.ADMIN})


class SystemAction(enum.StrEnum):
    """What a SYSTEM message records (`Message.extra["action"]`)."""

    CREATED = "CREATED"
    INVITED = "INVITED"
    JOINED = "JOINED"
    LEFT = "LEFT"
    REMOVED = "REMOVED"
    ROLE_CHANGED = "ROLE_CHANGED"
    OWNERSHIP_TRANSFERRED = "OWNERSHIP_TRANSFERRED"
    RENAMED = "RENAMED"
    DETAILS_UPDATED = "DETAILS_UPDATED"


@dataclass(frozen=True)
class GroupDetails:
    """New values for updateGroup: only the fields named in `given` change; None clears one
    (except the name, which every group has)."""

    name: str | None = None
    description: str | None = None
    avatar_url: str | None = None
    cover_url: str | None = None
    #: Which of the four were passed at all; the others stay as they are.
    given: frozenset[str] = frozenset()


# -- input rules ------------------------------------------------------------------------------


def _name(value: str | None) -> str:
    value = validation.text(value or "", field="name").strip()
    if not value or len(value) > MAX_NAME:
        raise BadUserInput(f"A group name is 1-{MAX_NAME} characters.", field="name")
    return value


def _description(value: str | None) -> str | None:
    value = validation.text(value or "", field="description").strip() or None
    if value is not None and len(value) > MAX_DESCRIPTION:
        raise BadUserInput(
            f"A description is at most {MAX_DESCRIPTION} characters.", field="description"
        )
    return value


def _url(value: str | None, *, field: str) -> str | None:
    value = validation.text(value or "", field=field).strip() or None
    if value is not None and (
        len(value) > MAX_URL or not value.startswith(("https://", "http://"))
    ):
        raise BadUserInput(
            f"{field} must be an http(s) URL of at most {MAX_URL} characters.", field=field
        )
    return value


# -- the locked unit of work ------------------------------------------------------------------


@dataclass
class _Change:
    """One membership change in progress: its session, the locked group, what to announce."""

    session: AsyncSession
    conversation: Conversation
    #: The actor's own membership (None for a creation's first step).
    membership: Membership | None
    notes: list[Message] = field(default_factory=list)
    joined: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    deleted: bool = False
    #: Newly invited: each hears of it by an event addressed to them.
    invited: list[int] = field(default_factory=list)
    #: Members who left or were removed, with why: each hears of it by an event addressed to
    #: them (their devices drop the group; nothing else of it reaches them any more).
    ended: list[tuple[int, SystemAction]] = field(default_factory=list)
    announcements: list[envelopes.EventAnnounced] = field(default_factory=list)
    #: (user id, position) of events addressed to one user (invitations, a deletion).
    notices: list[tuple[int, int, EventType]] = field(default_factory=list)
    #: A deletion's files, removed once it has committed.
    erasure: conversation_deletion.Erasure | None = None

    async def note(
        self,
        action: SystemAction,
        *,
        actor_id: int | None,
        target_ids: Sequence[int] = (),
        **details: object,
    ) -> None:
        """Queue a SYSTEM message; it takes the group's next seq (the row is locked)."""
        names = await _usernames(self.session, [i for i in (actor_id, *target_ids) if i])
        self.conversation.last_seq += 1
        self.conversation.last_activity_at = utcnow()
        message = Message(
            conversation_id=self.conversation.id,
            seq=self.conversation.last_seq,
            sender_id=actor_id,
            kind=MessageKind.SYSTEM,
            body=_describe(
                action, names.get(actor_id or 0), [names.get(t) for t in target_ids], details
            ),
            extra={"action": action.value, "targetIds": list(target_ids), **details},
            created_at=self.conversation.last_activity_at,
        )
        self.session.add(message)
        self.notes.append(message)

    async def log(self) -> None:
        """Append the queued messages' events: the transaction's last writes."""
        await self.session.flush()
        if self.deleted:
            return
        connection = await self.session.connection()
        for message in self.notes:
            event_id = await event_log.append(
                connection,
                type=EventType.MESSAGE_POSTED,
                conversation_id=message.conversation_id,
                actor_id=message.sender_id,
                message_id=message.id,
                seq=message.seq,
            )
            self.announcements.append(
                envelopes.EventAnnounced(
                    event_id, message.conversation_id, EventType.MESSAGE_POSTED.value, message.seq
                )
            )
        # After the SYSTEM message that records it: in log order, the invitation follows.
        for user_id in self.invited:
            position = await event_log.append(
                connection,
                type=EventType.GROUP_INVITED,
                conversation_id=self.conversation.id,
                actor_id=self.membership.user_id if self.membership else None,
                audience_id=user_id,
            )
            self.notices.append((user_id, position, EventType.GROUP_INVITED))
        for user_id, reason in self.ended:
            position = await event_log.append(
                connection,
                type=EventType.MEMBERSHIP_ENDED,
                conversation_id=self.conversation.id,
                actor_id=self.membership.user_id if self.membership else None,
                data={"reason": reason.value},
                audience_id=user_id,
            )
            self.notices.append((user_id, position, EventType.MEMBERSHIP_ENDED))


async def _usernames(session: AsyncSession, user_ids: list[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    return {user_id: username for user_id, username in rows}


def _describe(
    action: SystemAction, actor: str | None, targets: list[str | None], details: dict[str, object]
) -> str:
    """A plain-English fallback; clients render their own text from `system`."""
    who = f"@{actor}" if actor else "Someone"
    them = ", ".join(f"@{t}" for t in targets if t) or "someone"
    return {
        SystemAction.CREATED: f"{who} created the group",
        SystemAction.INVITED: f"{who} invited {them}",
        SystemAction.JOINED: f"{who} joined",
        SystemAction.LEFT: f"{who} left",
        SystemAction.REMOVED: f"{who} removed {them}",
        SystemAction.ROLE_CHANGED: f"{who} made {them} {str(details.get('role', '')).lower()}",
        SystemAction.OWNERSHIP_TRANSFERRED: f"{them} is now the owner",
        SystemAction.RENAMED: f"{who} renamed the group to {details.get('name')}",
        SystemAction.DETAILS_UPDATED: f"{who} updated the group details",
    }[action]


async def _announce(rt: Runtime, change: _Change) -> None:
    conversation_id = change.conversation.id
    for announcement in change.announcements:
        await rt.announce(channels.conversation(conversation_id), announcement)
    if change.removed:
        await rt.announce(
            channels.conversation(conversation_id),
            envelopes.MembersRemoved(conversation_id, sorted(set(change.removed))),
        )
    for user_id in change.joined:
        await rt.announce(channels.user(user_id), envelopes.ConversationJoined(conversation_id))
    for user_id, position, type in change.notices:
        await inbox.announce_to(rt, user_id, conversation_id, position, type)


@asynccontextmanager
async def _locked(
    rt: Runtime, *, viewer_id: int, conversation_id: int, pending: bool = False
) -> AsyncIterator[_Change]:
    """The group locked, with the viewer's membership: ACCEPTED (or, `pending`, PENDING).

    Announces what the change produced once it has committed.
    """
    async with rt.db.session() as session, session.begin():
        # FOR NO KEY UPDATE, the lock a send's UPDATE takes: it serialises membership changes
        # with each other and with sends, but not with the KEY SHARE that inserting an event
        # or message row (foreign key to the conversation) takes. On PostgreSQL the
        # conversation's advisory lock comes first: the SYSTEM messages take seqs.
        statement = (
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update(key_share=True)
        )
        if not rt.db.is_sqlite:
            statement = statement.where(event_log.serialised(conversation_id))
        conversation = await session.scalar(statement)
        if conversation is None:
            raise conversations.not_yours()
        membership = await _membership(session, conversation_id, viewer_id)
        require = conversations.require_invited if pending else conversations.require_accepted
        require(membership, viewer_id=viewer_id, conversation_id=conversation_id)
        if conversation.kind != ConversationKind.GROUP:
            raise BadUserInput("This conversation is not a group.", field="conversationId")
        change = _Change(session, conversation, membership)
        yield change
        await change.log()
    if change.erasure is not None:
        await conversation_deletion.remove_files(rt, change.erasure)
    await _announce(rt, change)


async def _membership(
    session: AsyncSession, conversation_id: int, user_id: int
) -> Membership | None:
    return await session.scalar(
        select(Membership).where(
            Membership.conversation_id == conversation_id, Membership.user_id == user_id
        )
    )


def _require_role(change: _Change, roles: frozenset[MemberRole], what: str) -> Membership:
    membership = change.membership
    assert membership is not None
    if membership.role not in roles:
        raise Forbidden(f"Only the {what} can do that.", field="conversationId")
    return membership


async def _target(change: _Change, user_id: int, *, accepted: bool = True) -> Membership:
    """Someone else's membership in the locked group (NOT_FOUND when they are not in it)."""
    assert change.membership is not None
    if user_id == change.membership.user_id:
        raise BadUserInput("You cannot do that to yourself.", field="userId")
    target = await _membership(change.session, change.conversation.id, user_id)
    if target is None or (accepted and target.state != MembershipState.ACCEPTED):
        raise NotFound("No such member in this group.", field="userId")
    return target


async def _add_invitees(change: _Change, *, inviter: User, user_ids: Sequence[int]) -> list[int]:
    """Invite whoever is not in the group yet; returns who was newly invited.

    Refused as a whole (nothing stored) when any of them cannot be invited.
    """
    session = change.session
    wanted = list(dict.fromkeys(user_ids))
    if inviter.id in wanted:
        raise BadUserInput("You cannot invite yourself.", field="userIds")
    users = {
        user.id: user for user in await session.scalars(select(User).where(User.id.in_(wanted)))
    }
    for user_id in wanted:
        user = users.get(user_id)
        if user is None or user.suspended_at is not None:
            raise NotFound("No such user.", field="userIds")
        if user.kind == UserKind.GUEST and user.role not in STAFF_ROLES:
            raise Forbidden("Guests can only talk to support staff.", field="userIds")
        await blocks.ensure_not_blocked(
            session, user_id=inviter.id, other_id=user_id, field="userIds"
        )
    present = set(
        await session.scalars(
            select(Membership.user_id).where(
                Membership.conversation_id == change.conversation.id,
                Membership.user_id.in_(wanted),
            )
        )
    )
    new = [user_id for user_id in wanted if user_id not in present]
    count = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.conversation_id == change.conversation.id)
    )
    if (count or 0) + len(new) > MAX_MEMBERS:
        raise BadUserInput(f"A group has at most {MAX_MEMBERS} members.", field="userIds")
    now = utcnow()
    # An invitee counts from here: not even an earlier invitation, withdrawn or declined,
    # reaches them (chatr.infra.event_log).
    since = event_log.since_now(session.get_bind().dialect.name)
    session.add_all(
        Membership(
            conversation_id=change.conversation.id,
            user_id=user_id,
            role=MemberRole.MEMBER,
            state=MembershipState.PENDING,
            invited_by_id=inviter.id,
            joined_at=now,
            **since,
        )
        for user_id in new
    )
    if new:
        await change.note(SystemAction.INVITED, actor_id=inviter.id, target_ids=new)
        change.invited.extend(new)
    return new


# -- the operations ---------------------------------------------------------------------------


async def create(
    rt: Runtime,
    *,
    creator_id: int,
    name: str,
    description: str | None = None,
    avatar_url: str | None = None,
    cover_url: str | None = None,
    invitee_ids: Sequence[int] = (),
) -> Conversation:
    """A new group owned by its creator, with the invitees PENDING until they accept."""
    details = GroupDetails(
        name=_name(name),
        description=_description(description),
        avatar_url=_url(avatar_url, field="avatarUrl"),
        cover_url=_url(cover_url, field="coverUrl"),
    )
    async with rt.db.session() as session, session.begin():
        creator = await accounts.require_viewer(session, viewer_id=creator_id)
        if creator.kind == UserKind.GUEST:
            raise Forbidden("Guests can only talk to support staff.")
        now = utcnow()
        conversation = Conversation(
            kind=ConversationKind.GROUP,
            name=details.name,
            description=details.description,
            avatar_url=details.avatar_url,
            cover_url=details.cover_url,
            created_by_id=creator_id,
            last_seq=0,
            created_at=now,
            last_activity_at=now,
        )
        session.add(conversation)
        await session.flush()
        owner = Membership(
            conversation_id=conversation.id,
            user_id=creator_id,
            role=MemberRole.OWNER,
            state=MembershipState.ACCEPTED,
            joined_at=now,
        )
        session.add(owner)
        change = _Change(session, conversation, owner, joined=[creator_id])
        await change.note(SystemAction.CREATED, actor_id=creator_id, name=details.name)
        await _add_invitees(change, inviter=creator, user_ids=invitee_ids)
        await change.log()
    await _announce(rt, change)
    return conversation


async def update(
    rt: Runtime,
    *,
    viewer_id: int,
    conversation_id: int,
    details: GroupDetails,
    pictures: dict[str, str | None] | None = None,
) -> Conversation:
    """Owner and admins change name, description, avatar and cover; one SYSTEM message.
    `pictures`: `avatar_url`/`cover_url` values chatr made itself (chatr.services.pictures)."""
    values: dict[str, str | None] = dict(pictures or {})
    if "name" in details.given:
        values["name"] = _name(details.name)
    if "description" in details.given:
        values["description"] = _description(details.description)
    if "avatar_url" in details.given:
        values["avatar_url"] = _url(details.avatar_url, field="avatarUrl")
    if "cover_url" in details.given:
        values["cover_url"] = _url(details.cover_url, field="coverUrl")
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        _require_role(change, MANAGERS, "owner or an admin")
        conversation = change.conversation
        changed = {k: v for k, v in values.items() if getattr(conversation, k) != v}
        for key, value in changed.items():
            setattr(conversation, key, value)
        if "name" in changed:
            await change.note(SystemAction.RENAMED, actor_id=viewer_id, name=changed["name"])
        elif changed:
            await change.note(SystemAction.DETAILS_UPDATED, actor_id=viewer_id)
    return conversation


async def delete_group(rt: Runtime, *, viewer_id: int, conversation_id: int) -> None:
    """The owner deletes the group with its history for everyone."""
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        _require_role(change, frozenset({MemberRole.OWNER}), "owner")
        await _delete(change)


async def _delete(change: _Change) -> None:
    """Delete the group for everyone, as a durable event for each former member
    (chatr.services.conversation_deletion); nothing else of this change is logged."""
    assert change.membership is not None
    change.notes.clear()
    change.invited.clear()
    change.deleted = True
    change.erasure = await conversation_deletion.erase(
        change.session, change.conversation, actor_id=change.membership.user_id
    )
    change.notices.extend(
        (user_id, position, EventType.CONVERSATION_DELETED)
        for user_id, position in change.erasure.notices
    )


async def invite(
    rt: Runtime, *, viewer_id: int, conversation_id: int, user_ids: Sequence[int]
) -> Conversation:
    """Owner and admins invite more people; those already in (or invited) are left as they are."""
    if not user_ids:
        raise BadUserInput("Invite at least one person.", field="userIds")
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        _require_role(change, MANAGERS, "owner or an admin")
        inviter = await accounts.require_viewer(change.session, viewer_id=viewer_id)
        await _add_invitees(change, inviter=inviter, user_ids=user_ids)
    return change.conversation


async def accept_invite(rt: Runtime, *, viewer_id: int, conversation_id: int) -> Conversation:
    """The invitee joins: they read and post from now on, and their `myEvents` follows
    (from their joining on: a replay from an older cursor gives them nothing before it)."""
    async with _locked(
        rt, viewer_id=viewer_id, conversation_id=conversation_id, pending=True
    ) as change:
        assert change.membership is not None
        change.membership.state = MembershipState.ACCEPTED
        change.membership.joined_at = utcnow()
        # They get the group's events from their joining on, not its past (history is
        # there to page through; the event log is what happened while they were in it).
        for name, value in event_log.since_now(change.session.get_bind().dialect.name).items():
            setattr(change.membership, name, value)
        change.joined.append(viewer_id)
        await change.note(SystemAction.JOINED, actor_id=viewer_id)
    return change.conversation


async def decline_invite(rt: Runtime, *, viewer_id: int, conversation_id: int) -> None:
    async with _locked(
        rt, viewer_id=viewer_id, conversation_id=conversation_id, pending=True
    ) as change:
        assert change.membership is not None
        await change.session.delete(change.membership)


async def leave(rt: Runtime, *, viewer_id: int, conversation_id: int) -> None:
    """Leave; a leaving owner hands the group on (oldest admin, else oldest member) and the
    last one out deletes it."""
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        membership = change.membership
        assert membership is not None
        successor = None
        if membership.role == MemberRole.OWNER:
            successor = await change.session.scalar(
                select(Membership)
                .where(
                    Membership.conversation_id == conversation_id,
                    Membership.state == MembershipState.ACCEPTED,
                    Membership.user_id != viewer_id,
                )
                .order_by(
                    (Membership.role != MemberRole.ADMIN), Membership.joined_at, Membership.id
                )
                .limit(1)
            )
            if successor is None:
                await _delete(change)
                return
        await change.session.delete(membership)
        change.removed.append(viewer_id)
        change.ended.append((viewer_id, SystemAction.LEFT))
        await change.note(SystemAction.LEFT, actor_id=viewer_id)
        if successor is not None:
            successor.role = MemberRole.OWNER
            await change.note(
                SystemAction.OWNERSHIP_TRANSFERRED,
                actor_id=viewer_id,
                target_ids=[successor.user_id],
            )


async def kick(rt: Runtime, *, viewer_id: int, conversation_id: int, user_id: int) -> Conversation:
    """Admins remove members (or withdraw invitations); the owner also removes admins; nobody
    removes the owner."""
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        actor = _require_role(change, MANAGERS, "owner or an admin")
        target = await _target(change, user_id, accepted=False)
        if target.role == MemberRole.OWNER:
            raise Forbidden("Nobody can remove the owner.", field="userId")
        if target.role == MemberRole.ADMIN and actor.role != MemberRole.OWNER:
            raise Forbidden("Only the owner can remove an admin.", field="userId")
        await change.session.delete(target)
        change.removed.append(user_id)
        if target.state == MembershipState.ACCEPTED:  # (a withdrawn invitation reaches nobody)
            change.ended.append((user_id, SystemAction.REMOVED))
        await change.note(SystemAction.REMOVED, actor_id=viewer_id, target_ids=[user_id])
    return change.conversation


async def _set_role(
    rt: Runtime, *, viewer_id: int, conversation_id: int, user_id: int, role: MemberRole
) -> Conversation:
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        _require_role(change, frozenset({MemberRole.OWNER}), "owner")
        target = await _target(change, user_id)
        if target.role == role:
            raise BadUserInput(f"They are already {role.value.lower()}.", field="userId")
        target.role = role
        await change.note(
            SystemAction.ROLE_CHANGED, actor_id=viewer_id, target_ids=[user_id], role=role.value
        )
    return change.conversation


async def promote(
    rt: Runtime, *, viewer_id: int, conversation_id: int, user_id: int
) -> Conversation:
    """The owner makes an accepted member an admin."""
    return await _set_role(
        rt,
        viewer_id=viewer_id,
        conversation_id=conversation_id,
        user_id=user_id,
        role=MemberRole.ADMIN,
    )


async def demote(
    rt: Runtime, *, viewer_id: int, conversation_id: int, user_id: int
) -> Conversation:
    """The owner makes an admin a plain member again."""
    return await _set_role(
        rt,
        viewer_id=viewer_id,
        conversation_id=conversation_id,
        user_id=user_id,
        role=MemberRole.MEMBER,
    )


async def transfer_ownership(
    rt: Runtime, *, viewer_id: int, conversation_id: int, user_id: int
) -> Conversation:
    """The owner hands the group to an accepted member and stays on as an admin."""
    async with _locked(rt, viewer_id=viewer_id, conversation_id=conversation_id) as change:
        owner = _require_role(change, frozenset({MemberRole.OWNER}), "owner")
        target = await _target(change, user_id)
        target.role = MemberRole.OWNER
        owner.role = MemberRole.ADMIN
        await change.note(
            SystemAction.OWNERSHIP_TRANSFERRED, actor_id=viewer_id, target_ids=[user_id]
        )
    return change.conversation


# -- reading ----------------------------------------------------------------------------------


async def visible_invite(rt: Runtime, *, viewer_id: int, invite_id: int) -> Membership:
    """A pending invitation to a group (a `GroupInvite`), for whoever sees it elsewhere: the
    invitee (`myGroupInvites`) and the group's members (`invitedMembers`). NOT_FOUND for
    anyone else, as for one that does not exist or was answered, withdrawn or deleted with
    its group: an invitation's id tells a stranger nothing."""
    async with rt.db.reader() as session:
        invite = await session.scalar(
            select(Membership)
            .join(Conversation, Conversation.id == Membership.conversation_id)
            .where(
                Membership.id == invite_id,
                Membership.state == MembershipState.PENDING,
                Conversation.kind == ConversationKind.GROUP,
                Conversation.deleted_at.is_(None),
            )
        )
        if invite is None:
            raise NotFound("No such invitation.", field="id")
        if invite.user_id != viewer_id:
            await conversations.get_membership_or_raise(
                session, viewer_id=viewer_id, conversation_id=invite.conversation_id
            )
    return invite


async def list_invites_for(session: AsyncSession, *, viewer_id: int) -> list[Membership]:
    """My pending invitations, newest first (the group's name and inviter hang off them)."""
    result = await session.scalars(
        select(Membership)
        .join(Conversation, Conversation.id == Membership.conversation_id)
        .where(
            Membership.user_id == viewer_id,
            Membership.state == MembershipState.PENDING,
            Conversation.kind == ConversationKind.GROUP,
        )
        .order_by(Membership.joined_at.desc(), Membership.id.desc())
    )
    return list(result)
