"""Groups: root fields, their inputs, invitations and the details of SYSTEM messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import Membership
from chatr.resolvers import groups as resolvers
from chatr.schema import removals
from chatr.schema.conversations import ConversationType
from chatr.schema.info import ChatrInfo
from chatr.schema.node import Node, thin_view
from chatr.schema.profiles import UserType
from chatr.schema.removals import DeclineGroupInvitePayload, DeleteGroupPayload, LeaveGroupPayload
from chatr.schema.scalars import MemberRoleEnum
from chatr.services import groups
from chatr.services.groups import GroupDetails

strawberry.enum(
    groups.SystemAction,
    name="SystemAction",
    description="What a SYSTEM message records: the group was created, renamed or its details "
    "updated; people were invited, joined, left or were removed; a role changed; ownership "
    "moved.",
)
SystemActionEnum = groups.SystemAction

SystemDetails = dict[str, Any]


@strawberry.type(name="SystemDetails", description="What a SYSTEM message says happened.")
class SystemDetailsType:
    @strawberry.field
    def action(self, root: Parent[SystemDetails]) -> SystemActionEnum:
        return groups.SystemAction(root["action"])

    @strawberry.field(description="Whom it happened to (the message's sender is who did it).")
    async def targets(self, root: Parent[SystemDetails], info: ChatrInfo) -> list[UserType]:
        ids = root.get("targetIds") or []
        users = await info.context.loaders.user_by_id.load_many(ids)
        return [user for user in users if user is not None]  # type: ignore[misc]

    @strawberry.field(description="ROLE_CHANGED: the new role.")
    def role(self, root: Parent[SystemDetails]) -> MemberRoleEnum | None:
        return root.get("role")

    @strawberry.field(description="CREATED and RENAMED: the group's (new) name.")
    def name(self, root: Parent[SystemDetails]) -> str | None:
        value = root.get("name")
        return None if value is None else str(value)


@strawberry.type(
    name="GroupInvite",
    description="An invitation to a group, waiting for an answer: enough to decide, not the "
    "history.",
)
class GroupInviteType(Node):
    is_type_of = thin_view

    @strawberry.field(
        description="The invitee and the group's members find it with `node(id:)` while it "
        "waits for an answer."
    )
    def id(self, root: Parent[Membership]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.GROUP_INVITE, root.id))

    @strawberry.field
    def conversation_id(self, root: Parent[Membership]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.CONVERSATION, root.conversation_id))

    @strawberry.field(description="The group's name.")
    async def name(self, root: Parent[Membership], info: ChatrInfo) -> str | None:
        group = await info.context.loaders.conversation_by_id.load(root.conversation_id)
        return None if group is None else group.name

    @strawberry.field
    async def description(self, root: Parent[Membership], info: ChatrInfo) -> str | None:
        group = await info.context.loaders.conversation_by_id.load(root.conversation_id)
        return None if group is None else group.description

    @strawberry.field
    async def avatar_url(self, root: Parent[Membership], info: ChatrInfo) -> str | None:
        group = await info.context.loaders.conversation_by_id.load(root.conversation_id)
        return None if group is None else group.avatar_url

    @strawberry.field(description="Who is invited (me, in `myGroupInvites`).")
    async def invitee(self, root: Parent[Membership], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]

    @strawberry.field
    async def invited_by(self, root: Parent[Membership], info: ChatrInfo) -> UserType | None:
        if root.invited_by_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.invited_by_id)  # type: ignore[return-value]

    @strawberry.field
    def invited_at(self, root: Parent[Membership]) -> datetime:
        return root.joined_at


@strawberry.input(description="A new group; I become its OWNER.")
class CreateGroupInput:
    name: str = strawberry.field(description="1-100 characters.")
    description: str | None = strawberry.field(default=None, description="At most 1,000.")
    avatar_url: str | None = strawberry.field(default=None, description="An http(s) URL.")
    cover_url: str | None = strawberry.field(default=None, description="An http(s) URL.")
    invitee_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="People to invite; each must accept (acceptGroupInvite) to join.",
    )


@strawberry.input(description="New group details: omitted fields stay; null clears (not name).")
class UpdateGroupInput:
    conversation_id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    avatar_url: str | None = strawberry.UNSET
    cover_url: str | None = strawberry.UNSET


def _details(input: UpdateGroupInput) -> GroupDetails:
    given = {
        key
        for key in ("name", "description", "avatar_url", "cover_url")
        if getattr(input, key) is not strawberry.UNSET
    }
    values = {key: getattr(input, key) for key in given}
    return GroupDetails(**values, given=frozenset(given))


@strawberry.type
class GroupQuery:
    @strawberry.field(description="Group invitations waiting for my answer, newest first.")
    async def my_group_invites(self, info: ChatrInfo) -> list[GroupInviteType]:
        return await resolvers.my_invites(info.context)  # type: ignore[return-value]


@strawberry.type
class GroupMutation:
    @strawberry.mutation(
        description="Create a group and invite people. FORBIDDEN for guests, for inviting a "
        "guest, or (`reason: BLOCKED`) someone either of us blocked."
    )
    async def create_group(self, info: ChatrInfo, input: CreateGroupInput) -> ConversationType:
        return await resolvers.create(  # type: ignore[return-value]
            info.context,
            name=input.name,
            description=input.description,
            avatar_url=input.avatar_url,
            cover_url=input.cover_url,
            invitee_ids=input.invitee_ids,
        )

    @strawberry.mutation(description="Change name, description, avatar or cover (owner, admins).")
    async def update_group(self, info: ChatrInfo, input: UpdateGroupInput) -> ConversationType:
        return await resolvers.update(  # type: ignore[return-value]
            info.context, conversation_id=input.conversation_id, details=_details(input)
        )

    @strawberry.mutation(description="Delete the group and its history for everyone (owner).")
    async def delete_group(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> DeleteGroupPayload:
        await resolvers.in_group(info.context, groups.delete_group, conversation_id=conversation_id)
        return DeleteGroupPayload(conversation_id=removals.conversation_id(conversation_id))

    @strawberry.mutation(
        description="Invite more people (owner, admins). People already in or invited are "
        "left as they are. FORBIDDEN for guests and (`reason: BLOCKED`) blocked people."
    )
    async def invite_to_group(
        self, info: ChatrInfo, conversation_id: strawberry.ID, user_ids: list[strawberry.ID]
    ) -> ConversationType:
        return await resolvers.invite(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, user_ids=user_ids
        )

    @strawberry.mutation(
        description="Join a group I was invited to. NOT_FOUND without an invitation (as for "
        "any group I am not in); FORBIDDEN if I am in it already."
    )
    async def accept_group_invite(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.in_group(
            info.context,
            groups.accept_invite,  # type: ignore[arg-type]
            conversation_id=conversation_id,
        )

    @strawberry.mutation(description="Turn an invitation down; I can be invited again.")
    async def decline_group_invite(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> DeclineGroupInvitePayload:
        await resolvers.in_group(
            info.context, groups.decline_invite, conversation_id=conversation_id
        )
        return DeclineGroupInvitePayload(conversation_id=removals.conversation_id(conversation_id))

    @strawberry.mutation(
        description="Leave a group. If I am the owner, the oldest admin (else the oldest "
        "member) becomes owner; if I am the last member, the group is deleted."
    )
    async def leave_group(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> LeaveGroupPayload:
        await resolvers.in_group(info.context, groups.leave, conversation_id=conversation_id)
        return LeaveGroupPayload(conversation_id=removals.conversation_id(conversation_id))

    @strawberry.mutation(
        description="Remove a member or withdraw an invitation (owner, admins); only the owner "
        "removes admins; nobody removes the owner."
    )
    async def remove_group_member(
        self, info: ChatrInfo, conversation_id: strawberry.ID, user_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.on_member(
            info.context,
            groups.kick,  # type: ignore[arg-type]
            conversation_id=conversation_id,
            user_id=user_id,
        )

    @strawberry.mutation(description="Make a member an admin (owner).")
    async def promote_group_member(
        self, info: ChatrInfo, conversation_id: strawberry.ID, user_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.on_member(
            info.context,
            groups.promote,  # type: ignore[arg-type]
            conversation_id=conversation_id,
            user_id=user_id,
        )

    @strawberry.mutation(description="Make an admin a plain member again (owner).")
    async def demote_group_member(
        self, info: ChatrInfo, conversation_id: strawberry.ID, user_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.on_member(
            info.context,
            groups.demote,  # type: ignore[arg-type]
            conversation_id=conversation_id,
            user_id=user_id,
        )

    @strawberry.mutation(description="Hand the group to a member (owner); I stay on as an admin.")
    async def transfer_group_ownership(
        self, info: ChatrInfo, conversation_id: strawberry.ID, user_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.on_member(
            info.context,
            groups.transfer_ownership,  # type: ignore[arg-type]
            conversation_id=conversation_id,
            user_id=user_id,
        )
