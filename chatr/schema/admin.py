"""Administration: accounts as administrators see them."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import User, UserRole
from chatr.resolvers import admin as resolvers
from chatr.schema import removals
from chatr.schema.info import ChatrInfo
from chatr.schema.node import Node, thin_view
from chatr.schema.pagination import Connection
from chatr.schema.removals import DeleteUserPayload
from chatr.services.pagination import PageRequest

strawberry.enum(UserRole, name="UserRole", description="What an account may do.")
UserRoleEnum = UserRole


@strawberry.type(name="UserAccount", description="An account as an administrator sees it.")
class UserAccountType(Node):
    is_type_of = thin_view

    @strawberry.field
    def id(self, root: Parent[User]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.USER_ACCOUNT, root.id))

    username: str
    display_name: str
    email: str | None
    role: UserRoleEnum
    created_at: datetime
    suspended_at: datetime | None
    email_verified_at: datetime | None


@strawberry.type
class AdminQuery:
    @strawberry.field(
        description="Administrators only: every account, newest first; `search` matches "
        "username or email."
    )
    async def users(
        self,
        info: ChatrInfo,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[UserAccountType]:
        page = await resolvers.users(
            info.context,
            page=PageRequest(first=first, after=after, last=last, before=before),
            search=search,
        )
        return Connection.from_page(page)


@strawberry.type
class AdminMutation:
    @strawberry.mutation(
        description="Administrators only: refuse the user's logins and end their sessions "
        "(their sockets close with 4403)."
    )
    async def suspend_user(self, info: ChatrInfo, user_id: strawberry.ID) -> UserAccountType:
        return await resolvers.suspend(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(description="Administrators only: lift a suspension.")
    async def unsuspend_user(self, info: ChatrInfo, user_id: strawberry.ID) -> UserAccountType:
        return await resolvers.unsuspend(info.context, user_id=user_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Administrators only: delete the account and everything that belongs to it; "
        "its messages stay in conversations without a sender."
    )
    async def delete_user(self, info: ChatrInfo, user_id: strawberry.ID) -> DeleteUserPayload:
        return removals.deleted_user(await resolvers.delete(info.context, user_id=user_id))
