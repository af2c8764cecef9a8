"""Conversations: the Conversation and Member types, the inbox and one conversation."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import Conversation, ConversationKind, Membership
from chatr.resolvers import conversations as resolvers
from chatr.resolvers import message_changes as message_change_resolvers
from chatr.resolvers import messages as message_resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.messages import MessageType
from chatr.schema.node import Node, thin_view
from chatr.schema.pagination import Connection
from chatr.schema.profiles import UserType, visible
from chatr.schema.scalars import (
    ConversationKindEnum,
    ConversationStatusEnum,
    MemberRoleEnum,
    MembershipStateEnum,
)
from chatr.services import inbox
from chatr.services.pagination import PageRequest
from chatr.services.privacy import Detail


@strawberry.type(name="Member", description="A participant and how far they have got.")
class MemberType:
    joined_at: datetime = strawberry.field(
        description="When they joined (for a PENDING member: when they were invited)."
    )
    role: MemberRoleEnum
    state: MembershipStateEnum

    @strawberry.field(description="Who invited them (groups), if anyone.")
    async def invited_by(self, root: Parent[Membership], info: ChatrInfo) -> UserType | None:
        if root.invited_by_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.invited_by_id)  # type: ignore[return-value]

    @strawberry.field(
        description="How far their devices have received; null while they have not answered "
        "my message request."
    )
    async def last_delivered_seq(self, root: Parent[Membership], info: ChatrInfo) -> int | None:
        if await resolvers.markers_hidden(info.context, root):
            return None
        return root.last_delivered_seq

    @strawberry.field(
        description="How far they have read; null when their read-receipt privacy setting "
        "hides it from me, or while they have not answered my message request."
    )
    async def last_read_seq(self, root: Parent[Membership], info: ChatrInfo) -> int | None:
        member = await info.context.loaders.user_by_id.load(root.user_id)
        if member is None or await resolvers.markers_hidden(info.context, root):
            return None
        return await visible(info, member, Detail.READ_RECEIPTS, root.last_read_seq)

    @strawberry.field
    async def user(self, root: Parent[Membership], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]


@strawberry.type(name="Conversation", description="A direct conversation or a group.")
class ConversationType(Node):
    is_type_of = thin_view

    @strawberry.field
    def id(self, root: Parent[Conversation]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.CONVERSATION, root.id))

    kind: ConversationKindEnum
    status: ConversationStatusEnum
    name: str | None
    description: str | None = strawberry.field(description="Groups only.")
    avatar_url: str | None = strawberry.field(description="Groups only.")
    cover_url: str | None = strawberry.field(description="Groups only.")
    created_at: datetime
    last_activity_at: datetime
    last_seq: int = strawberry.field(description="Seq of the newest message (0 when empty).")

    @strawberry.field(description="Everyone who has joined (ACCEPTED), oldest membership first.")
    async def members(self, root: Parent[Conversation], info: ChatrInfo) -> list[MemberType]:
        return await info.context.loaders.members_by_conversation.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="Groups: people invited who have not answered yet (PENDING).")
    async def invited_members(
        self, root: Parent[Conversation], info: ChatrInfo
    ) -> list[MemberType]:
        if root.kind != ConversationKind.GROUP:
            return []
        return await info.context.loaders.invitees_by_conversation.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="My role here: OWNER, ADMIN or MEMBER.")
    async def my_role(self, root: Parent[Conversation], info: ChatrInfo) -> MemberRoleEnum | None:
        viewer = await info.context.viewer()
        membership = await info.context.loaders.membership.load((root.id, viewer.id))
        return None if membership is None else membership.role

    @strawberry.field(description="For a direct conversation: the other person.")
    async def peer(self, root: Parent[Conversation], info: ChatrInfo) -> UserType | None:
        if root.kind != ConversationKind.DIRECT:
            return None
        viewer = await info.context.viewer()
        members = await info.context.loaders.members_by_conversation.load(root.id)
        other = next((m.user_id for m in members if m.user_id != viewer.id), None)
        return None if other is None else await info.context.loaders.user_by_id.load(other)  # type: ignore[return-value]

    @strawberry.field
    async def last_message(self, root: Parent[Conversation], info: ChatrInfo) -> MessageType | None:
        if root.last_seq == 0:
            return None
        return await info.context.loaders.message_by_conversation_seq.load((root.id, root.last_seq))  # type: ignore[return-value]

    @strawberry.field(
        description="Messages after the viewer's read marker, leaving out those unsent and "
        "those I deleted for myself."
    )
    async def unread_count(self, root: Parent[Conversation], info: ChatrInfo) -> int:
        viewer = await info.context.viewer()
        membership = await info.context.loaders.membership.load((root.id, viewer.id))
        if membership is None or root.last_seq <= membership.last_read_seq:
            return 0
        left_out = await info.context.loaders.unread_not_counted.load((root.id, viewer.id))
        return max(0, root.last_seq - membership.last_read_seq - left_out)

    @strawberry.field(description="Unread messages that @mention me (groups).")
    async def mention_count(self, root: Parent[Conversation], info: ChatrInfo) -> int:
        viewer = await info.context.viewer()
        return await info.context.loaders.unread_mentions.load((root.id, viewer.id))

    @strawberry.field(
        description="Pinned messages, most recently pinned first (at most the server's limit)."
    )
    async def pinned_messages(
        self, root: Parent[Conversation], info: ChatrInfo
    ) -> list[MessageType]:
        return await message_change_resolvers.pinned_messages(  # type: ignore[return-value]
            info.context, conversation_id=root.id
        )

    @strawberry.field(description="Until when I muted it (null: not muted). Only I see it.")
    async def muted_until(self, root: Parent[Conversation], info: ChatrInfo) -> datetime | None:
        membership = await _my_membership(root, info)
        if membership is None or not inbox.is_muted(membership):
            return None
        return membership.muted_until

    @strawberry.field(description="Whether I archived it. Only I see it.")
    async def archived(self, root: Parent[Conversation], info: ChatrInfo) -> bool:
        membership = await _my_membership(root, info)
        return membership is not None and membership.archived_at is not None

    @strawberry.field(description="Whether I pinned it to the top of my inbox. Only I see it.")
    async def pinned(self, root: Parent[Conversation], info: ChatrInfo) -> bool:
        membership = await _my_membership(root, info)
        return membership is not None and membership.pinned_at is not None

    @strawberry.field(description="The viewer's own receipts in this conversation.")
    async def my_membership(self, root: Parent[Conversation], info: ChatrInfo) -> MemberType | None:
        viewer = await info.context.viewer()
        return await info.context.loaders.membership.load((root.id, viewer.id))  # type: ignore[return-value]

    @strawberry.field(
        description="History, newest first. `first`/`last` at most 100; keyset cursors."
    )
    async def messages(
        self,
        root: Parent[Conversation],
        info: ChatrInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[MessageType]:
        page = await message_resolvers.history(
            info.context,
            conversation_id=root.id,
            page=PageRequest(first=first, after=after, last=last, before=before),
        )
        return Connection.from_page(page)


async def _my_membership(conversation: Conversation, info: ChatrInfo) -> Membership | None:
    viewer = await info.context.viewer()
    return await info.context.loaders.membership.load((conversation.id, viewer.id))


@strawberry.type
class ConversationQuery:
    @strawberry.field(
        description="The inbox: my conversations, those I pinned first, then most recent "
        "activity first; archived ones only with `archived: true` (and then only those)."
    )
    async def conversations(
        self,
        info: ChatrInfo,
        archived: bool = False,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ConversationType]:
        page = await resolvers.inbox(
            info.context,
            archived=archived,
            page=PageRequest(first=first, after=after, last=last, before=before),
        )
        return Connection.from_page(page)

    @strawberry.field(
        description="One of my conversations. NOT_FOUND when I am not in it, exactly as when "
        "there is none: ids reveal nothing."
    )
    async def conversation(self, info: ChatrInfo, id: strawberry.ID) -> ConversationType:
        return await resolvers.conversation(info.context, conversation_id=id)  # type: ignore[return-value]
