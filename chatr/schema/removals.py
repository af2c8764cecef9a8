"""What mutations that remove something answer: the global id of what is gone, so a client
can drop it from its cache. A payload type per mutation, so each can grow fields later
without breaking a client.

Every removal that takes a conversation out of my inbox (deleted, left, declined) implements
`ConversationRemoval`: a client can handle them all with one fragment.
"""

from __future__ import annotations

import strawberry

from chatr import global_ids
from chatr.global_ids import Kind


@strawberry.interface(
    description="A conversation is gone from my inbox: drop it (and its messages) from the cache."
)
class ConversationRemoval:
    conversation_id: strawberry.ID = strawberry.field(description="The conversation's id.")


@strawberry.type(description="What `deleteConversation` answers.")
class DeleteConversationPayload(ConversationRemoval):
    pass


@strawberry.type(description="What `deleteGroup` answers.")
class DeleteGroupPayload(ConversationRemoval):
    pass


@strawberry.type(description="What `leaveGroup` answers.")
class LeaveGroupPayload(ConversationRemoval):
    pass


@strawberry.type(description="What `declineGroupInvite` answers.")
class DeclineGroupInvitePayload(ConversationRemoval):
    pass


@strawberry.type(description="What `declineMessageRequest` answers.")
class DeclineMessageRequestPayload(ConversationRemoval):
    pass


@strawberry.type(description="What `deleteUser` answers.")
class DeleteUserPayload:
    deleted_user_id: strawberry.ID = strawberry.field(
        description="The deleted account's id, as `users` listed it (a `UserAccount` id)."
    )


def conversation_id(argument: str) -> strawberry.ID:
    """The global id of the conversation a mutation removed, from its `conversationId`
    argument once the mutation succeeded: ids have one spelling (`global_ids.decode` took
    no other), so the argument is the conversation's id exactly as `encode` makes it."""
    return strawberry.ID(argument)


def deleted_user(pk: int) -> DeleteUserPayload:
    """A user id may come as a `User` or a `UserAccount` id; the answer is the latter."""
    return DeleteUserPayload(
        deleted_user_id=strawberry.ID(global_ids.encode(Kind.USER_ACCOUNT, pk))
    )
