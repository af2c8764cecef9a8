"""Message requests: DMs from people who are not my friends, waiting for my answer."""

from __future__ import annotations

import strawberry

from chatr.resolvers import message_requests as resolvers
from chatr.schema import removals
from chatr.schema.conversations import ConversationType
from chatr.schema.info import ChatrInfo
from chatr.schema.pagination import Connection, connection_field
from chatr.schema.removals import DeclineMessageRequestPayload


@strawberry.type
class MessageRequestQuery:
    message_requests: Connection[ConversationType] = connection_field(
        ConversationType,
        resolvers.message_requests_to_me,
        description="Direct conversations started by people who are not my friends, waiting "
        "for my answer (status PENDING), most recent first.",
    )


@strawberry.type
class MessageRequestMutation:
    @strawberry.mutation(
        description="Accept a message request: the conversation becomes ACTIVE and the sender "
        "sees my receipts and typing from now on. Replying accepts too. FORBIDDEN for my own "
        "request or a conversation that is not pending."
    )
    async def accept_message_request(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> ConversationType:
        return await resolvers.accept_message_request(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id
        )

    @strawberry.mutation(
        description="Decline a message request: the conversation and its messages are deleted "
        "for both of us."
    )
    async def decline_message_request(
        self, info: ChatrInfo, conversation_id: strawberry.ID
    ) -> DeclineMessageRequestPayload:
        await resolvers.decline_message_request(info.context, conversation_id=conversation_id)
        return DeclineMessageRequestPayload(
            conversation_id=removals.conversation_id(conversation_id)
        )
