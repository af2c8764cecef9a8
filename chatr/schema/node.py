"""The Relay `Node` interface and the `node(id:)` / `nodes(ids:)` queries.

Every type with identity implements `Node`: its `id` is a global id (chatr.global_ids) that
`node(id:)` turns back into the same object, of the same type, for whoever may see it.
Implementations are thin views of model rows (see `thin_view`).
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLAbstractType, GraphQLResolveInfo

from chatr.models import (
    Attachment,
    AuthSession,
    Conversation,
    Friendship,
    Membership,
    Message,
    User,
)
from chatr.resolvers import nodes as resolvers
from chatr.schema.info import ChatrInfo
from chatr.services.nodes import Account
from chatr.services.uploads import UploadTicket

#: What each row a `node` answer can be is shown as. A user row is a `User`, unless it came
#: as an administrator's `Account` (`UserAccount`): the class, not the row, decides.
_TYPE_NAMES: dict[type, str] = {
    User: "User",
    Account: "UserAccount",
    Conversation: "Conversation",
    Message: "Message",
    AuthSession: "Session",
    Attachment: "Attachment",
    UploadTicket: "UploadTicket",
    Friendship: "Friendship",
    # A membership row is a Node only as a pending invitation (members are not Nodes).
    Membership: "GroupInvite",
}


@strawberry.interface(
    name="Node",
    description="An object with a global id: `node(id:)` finds it again. Ids are opaque "
    "strings, unique across every type; compare them as strings and never build them.",
)
class Node:
    @strawberry.field(description="Global, opaque and stable.")
    def id(self) -> strawberry.ID:
        """Each implementation shows its own rows' ids (`chatr.global_ids.encode`)."""
        raise NotImplementedError

    @classmethod
    def resolve_type(
        cls, obj: Any, info: GraphQLResolveInfo, abstract_type: GraphQLAbstractType
    ) -> str:
        return _TYPE_NAMES[type(obj)]


def _any_root(cls: type, obj: object, _info: object) -> bool:
    return True


#: The `is_type_of` of every Node type. strawberry gives a type that implements an interface
#: one that accepts only instances of the strawberry class, which a model row (or an event's
#: message snapshot) never is; these types show whatever their fields read, and which type
#: a `node` answer is, `Node.resolve_type` decides.
thin_view: Any = classmethod(_any_root)


@strawberry.type
class NodeQuery:
    @strawberry.field(
        description="The object with this global id, or null when there is none or it is not "
        "mine to see (the rule of its own field: a conversation I am in, a session of mine, "
        "...). BAD_USER_INPUT for a string that is no chatr id."
    )
    async def node(self, info: ChatrInfo, id: strawberry.ID) -> Node | None:
        return await resolvers.node(info.context, id=id)  # type: ignore[return-value]

    @strawberry.field(
        description="`node` for each id, in order (at most 100; BAD_USER_INPUT beyond)."
    )
    async def nodes(self, info: ChatrInfo, ids: list[strawberry.ID]) -> list[Node | None]:
        return await resolvers.nodes_by_ids(info.context, ids=ids)  # type: ignore[return-value]
