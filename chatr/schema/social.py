"""Friends and blocks: root fields, their types, and the live `friendEvents` stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import Block, Friendship, FriendshipState
from chatr.resolvers import social as resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.node import Node, thin_view
from chatr.schema.pagination import Connection, connection_field
from chatr.schema.profiles import UserType
from chatr.services.social import events, friends, search

strawberry.enum(
    FriendshipState,
    name="FriendshipState",
    description="REQUESTED (waiting for an answer) or ACCEPTED (friends).",
)
FriendshipStateEnum = FriendshipState
strawberry.enum(
    events.FriendChange,
    name="FriendEventKind",
    description="What changed between me and someone: a request was sent, accepted, declined "
    "or cancelled; a friend was removed; someone was blocked or unblocked.",
)
FriendEventKindEnum = events.FriendChange


@strawberry.type(
    name="Friendship",
    description="A friendship or a pending friend request, seen from my side. One object from "
    "the request on: accepting it keeps its id; declining, cancelling or removing ends it.",
)
class FriendshipType(Node):
    is_type_of = thin_view

    @strawberry.field(description="Only its two people find it with `node(id:)`.")
    def id(self, root: Parent[Friendship]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.FRIENDSHIP, root.id))

    state: FriendshipStateEnum
    created_at: datetime = strawberry.field(description="When the request was sent.")
    accepted_at: datetime | None = strawberry.field(description="When we became friends.")

    @strawberry.field(description="The other person.")
    async def user(self, root: Parent[Friendship], info: ChatrInfo) -> UserType | None:
        viewer = await info.context.viewer()
        other = friends.other_party(root, viewer_id=viewer.id)
        return await info.context.loaders.user_by_id.load(other)  # type: ignore[return-value]

    @strawberry.field(description="True when I sent the request, false when they did.")
    async def requested_by_me(self, root: Parent[Friendship], info: ChatrInfo) -> bool:
        viewer = await info.context.viewer()
        return root.requester_id == viewer.id


@strawberry.type(name="BlockedUser", description="Someone I blocked.")
class BlockedUserType:
    @strawberry.field
    async def user(self, root: Parent[Block], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.blocked_id)  # type: ignore[return-value]

    @strawberry.field
    def blocked_at(self, root: Parent[Block]) -> datetime:
        return root.created_at


@strawberry.type(
    name="FriendEvent",
    description="Something changed between me and another person. Not stored: after a "
    "reconnect, re-query `friends`, `incomingFriendRequests`, `outgoingFriendRequests` and "
    "`blockedUsers`.",
)
class FriendEventType:
    @strawberry.field
    def kind(self, root: Parent[events.FriendEvent]) -> FriendEventKindEnum:
        return root.change

    @strawberry.field(description="The other person.")
    async def user(self, root: Parent[events.FriendEvent], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]

    @strawberry.field(
        description="True when I made this change (on any of my devices), false when they did."
    )
    def by_me(self, root: Parent[events.FriendEvent]) -> bool:
        return root.by_viewer

    @strawberry.field
    def occurred_at(self, root: Parent[events.FriendEvent]) -> datetime:
        return root.occurred_at


strawberry.enum(search.Relation, name="Relation", description="How a person relates to me.")
RelationEnum = search.Relation


@strawberry.type(name="PersonMatch", description="A search result: someone and how we relate.")
class PersonMatchType:
    user: UserType
    relation: RelationEnum


@strawberry.type
class SocialQuery:
    @strawberry.field(
        description="Find people by username or name (1-50 characters), friends first, at most "
        "30. Leaves out me, guests, bots, unverified accounts and anyone either of us blocked."
    )
    async def search_users(
        self, info: ChatrInfo, query: str, first: int | None = None
    ) -> list[PersonMatchType]:
        return await resolvers.search_people(
            info.context, query=query, first=search.MAX_SEARCH_RESULTS if first is None else first
        )  # type: ignore[return-value]

    friends: Connection[FriendshipType] = connection_field(
        FriendshipType,
        resolvers.friends,
        description="My friends, most recent first. `first`/`last` at most 100.",
    )

    incoming_friend_requests: Connection[FriendshipType] = connection_field(
        FriendshipType,
        resolvers.incoming_requests,
        description="Friend requests waiting for my answer, newest first.",
    )

    outgoing_friend_requests: Connection[FriendshipType] = connection_field(
        FriendshipType,
        resolvers.outgoing_requests,
        description="Friend requests I sent that are not answered yet, newest first.",
    )

    blocked_users: Connection[BlockedUserType] = connection_field(
        BlockedUserType,
        resolvers.blocked_users,
        description="People I blocked, most recent first.",
    )


@strawberry.type
class SocialMutation:
    @strawberry.mutation(
        description="Ask someone to be friends. If they already asked me, we become friends at "
        "once (state ACCEPTED). CONFLICT if already asked or already friends; FORBIDDEN with "
        "`reason: BLOCKED` if either of us blocked the other."
    )
    async def send_friend_request(self, info: ChatrInfo, user_id: strawberry.ID) -> FriendshipType:
        return await resolvers.send_request(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Accept a request someone sent me. FORBIDDEN for my own request (only the "
        "person asked can accept); NOT_FOUND if there is none; CONFLICT if already friends."
    )
    async def accept_friend_request(
        self, info: ChatrInfo, user_id: strawberry.ID
    ) -> FriendshipType:
        return await resolvers.accept_request(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Decline a request someone sent me; they may ask again. Answers them, as "
        "`user` shows them to me. FORBIDDEN for my own request (cancel it instead); NOT_FOUND "
        "if there is none."
    )
    async def decline_friend_request(self, info: ChatrInfo, user_id: strawberry.ID) -> UserType:
        return await resolvers.decline_request(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Take back a request I sent. Answers them, as `user` shows them to me. "
        "FORBIDDEN for a request they sent me (decline it instead); NOT_FOUND if there is none."
    )
    async def cancel_friend_request(self, info: ChatrInfo, user_id: strawberry.ID) -> UserType:
        return await resolvers.cancel_request(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Stop being friends. Answers my former friend, as `user` shows them to me "
        "now (details shown to friends only are hidden). NOT_FOUND if we are not friends."
    )
    async def remove_friend(self, info: ChatrInfo, user_id: strawberry.ID) -> UserType:
        return await resolvers.remove_friend(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Block someone: ends any friendship or request between us, and stops direct "
        "messages, typing and friend requests both ways (FORBIDDEN with `reason: BLOCKED`) "
        "until I unblock. CONFLICT if already blocked."
    )
    async def block_user(self, info: ChatrInfo, user_id: strawberry.ID) -> BlockedUserType:
        return await resolvers.block(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Lift my block; messaging works again unless they blocked me too. "
        "Friendship is not restored. Answers them, as `user` shows them to me now. FORBIDDEN "
        "if they blocked me (only the blocker can unblock); NOT_FOUND if nobody did."
    )
    async def unblock_user(self, info: ChatrInfo, user_id: strawberry.ID) -> UserType:
        return await resolvers.unblock(info.context, user_id=user_id)  # type: ignore[return-value]


@strawberry.type
class SocialSubscription:
    @strawberry.subscription(
        description="Live friend events: requests sent, accepted, declined, cancelled; friends "
        "removed; blocks and unblocks — both mine and the other person's, from every instance."
    )
    async def friend_events(self, info: ChatrInfo) -> AsyncGenerator[FriendEventType, None]:
        stream = await resolvers.friend_events(info.context)
        async for event in stream:
            yield event  # type: ignore[misc]
