"""Receipts and typing: how far each member has received and read, and who is typing."""

from __future__ import annotations

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.resolvers import receipts as resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.profiles import UserType
from chatr.schema.scalars import TypingActivityEnum
from chatr.services.receipts import ReceiptState


@strawberry.type(name="Receipt", description="A member's delivered/read markers.")
class ReceiptType:
    last_read_seq: int
    last_delivered_seq: int

    @strawberry.field
    def conversation_id(self, root: Parent[ReceiptState]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.CONVERSATION, root.conversation_id))

    @strawberry.field
    async def user(self, root: Parent[ReceiptState], info: ChatrInfo) -> UserType | None:
        return await info.context.loaders.user_by_id.load(root.user_id)  # type: ignore[return-value]


@strawberry.type
class ReceiptMutation:
    @strawberry.mutation(description="I have read everything up to and including `upToSeq`.")
    async def mark_read(
        self, info: ChatrInfo, conversation_id: strawberry.ID, up_to_seq: int
    ) -> ReceiptType:
        return await resolvers.mark_read(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, up_to_seq=up_to_seq
        )

    @strawberry.mutation(description="My device has received everything up to `upToSeq`.")
    async def mark_delivered(
        self, info: ChatrInfo, conversation_id: strawberry.ID, up_to_seq: int
    ) -> ReceiptType:
        return await resolvers.mark_delivered(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, up_to_seq=up_to_seq
        )

    @strawberry.mutation(
        description="Typing indicator. Send true every few seconds while typing (or, with "
        "`activity: RECORDING_VOICE`, while recording a voice note); it expires after ~6 s "
        "without a refresh."
    )
    async def set_typing(
        self,
        info: ChatrInfo,
        conversation_id: strawberry.ID,
        typing: bool,
        activity: TypingActivityEnum = TypingActivityEnum.TYPING,
    ) -> bool:
        return await resolvers.set_typing(
            info.context, conversation_id=conversation_id, typing=typing, activity=activity
        )
