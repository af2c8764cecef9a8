"""Edit, unsend, delete for me, reactions, replies, forwards, pins and stars: root fields and
the types that hang off a `Message`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import MessageKind, MessageRevision
from chatr.resolvers import message_changes as resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.messages import MessageType
from chatr.schema.pagination import Connection, connection_field
from chatr.schema.profiles import UserType
from chatr.schema.scalars import MessageKindEnum
from chatr.services.reactions import ReactionSummary

ReplySnapshot = dict[str, Any]


@strawberry.type(description="What `deleteMessageForMe` answers.")
class DeleteMessageForMePayload:
    message_id: strawberry.ID = strawberry.field(description="The message I deleted for me.")


@strawberry.type(name="MessageRevision", description="One version of an edited message's text.")
class MessageRevisionType:
    body: str
    created_at: datetime = strawberry.field(description="When this version was written.")

    @strawberry.field(description="Who wrote this version (the sender).")
    async def editor(self, root: Parent[MessageRevision], info: ChatrInfo) -> UserType | None:
        if root.editor_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.editor_id)  # type: ignore[return-value]


@strawberry.type(name="ReactionSummary", description="One emoji on a message, and who put it.")
class ReactionSummaryType:
    emoji: str
    count: int

    @strawberry.field(description="Whether I am one of them.")
    async def reacted_by_me(self, root: Parent[ReactionSummary], info: ChatrInfo) -> bool:
        # One "is the viewer this user?" question per reactor (not the viewer's identity), so
        # a live event's render is shared by everyone who did not react.
        for user_id in root.user_ids:
            if await info.context.viewer_is(user_id):
                return True
        return False

    @strawberry.field(description="The first few who reacted with it, earliest first.")
    async def reactors(self, root: Parent[ReactionSummary], info: ChatrInfo) -> list[UserType]:
        users = await info.context.loaders.user_by_id.load_many(list(root.first_user_ids))
        return [user for user in users if user is not None]  # type: ignore[misc]


@strawberry.type(
    name="ReplySnapshot",
    description="The message a reply quotes, as it was when quoted. It outlives the "
    "original's edits; when the original is unsent its excerpt is gone and `deleted` is true.",
)
class ReplySnapshotType:
    @strawberry.field(description="The quoted message's id (in the same conversation).")
    def message_id(self, root: Parent[ReplySnapshot]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.MESSAGE, root["id"]))

    @strawberry.field
    def seq(self, root: Parent[ReplySnapshot]) -> int | None:
        return root.get("seq")

    @strawberry.field
    def kind(self, root: Parent[ReplySnapshot]) -> MessageKindEnum:
        return MessageKind(root["kind"])

    @strawberry.field(description="The start of the quoted text; null once it was unsent.")
    def excerpt(self, root: Parent[ReplySnapshot]) -> str | None:
        return root.get("excerpt")

    @strawberry.field(description="The quoted sender's display name when it was quoted.")
    def sender_name(self, root: Parent[ReplySnapshot]) -> str | None:
        return root.get("senderName")

    @strawberry.field(description="The quoted sender, as I may see them now.")
    async def sender(self, root: Parent[ReplySnapshot], info: ChatrInfo) -> UserType | None:
        sender_id = root.get("senderId")
        if sender_id is None:
            return None
        return await info.context.loaders.user_by_id.load(int(sender_id))  # type: ignore[return-value]

    @strawberry.field(description="True once the quoted message was unsent.")
    def deleted(self, root: Parent[ReplySnapshot]) -> bool:
        return bool(root.get("deleted"))


@strawberry.input(description="Forward a message I see to conversations I may post in.")
class ForwardMessageInput:
    message_id: strawberry.ID
    conversation_ids: list[strawberry.ID] = strawberry.field(description="1-10 conversations.")
    client_message_id: str = strawberry.field(
        description="Your idempotency key: retrying the forward with it returns the same copies."
    )


@strawberry.type
class MessageChangeMutation:
    @strawberry.mutation(
        description="Change the text of my text message (within the edit window, if the "
        "server sets one). Every version stays in `editHistory`."
    )
    async def edit_message(
        self, info: ChatrInfo, message_id: strawberry.ID, body: str
    ) -> MessageType:
        return await resolvers.edit_message(info.context, message_id=message_id, body=body)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Delete a message for everyone: my own, or any in a group I own or run. "
        "Its content is erased; a tombstone (`deletedAt`, `deletedBy`) stays in history."
    )
    async def unsend_message(self, info: ChatrInfo, message_id: strawberry.ID) -> MessageType:
        return await resolvers.unsend_message(info.context, message_id=message_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Delete a message for me only: gone from my history, search and unread "
        "counts; nobody else is told. Answers its id, to drop from the cache."
    )
    async def delete_message_for_me(
        self, info: ChatrInfo, message_id: strawberry.ID
    ) -> DeleteMessageForMePayload:
        await resolvers.delete_message_for_me(info.context, message_id=message_id)
        # The argument is the message's id as `encode` spells it: ids have no other spelling.
        return DeleteMessageForMePayload(message_id=message_id)

    @strawberry.mutation(
        description="React with one emoji. The same emoji again takes it back; another "
        "replaces mine."
    )
    async def react_to_message(
        self, info: ChatrInfo, message_id: strawberry.ID, emoji: str
    ) -> MessageType:
        return await resolvers.react_to_message(  # type: ignore[return-value]
            info.context, message_id=message_id, emoji=emoji
        )

    @strawberry.mutation(
        description="Send a copy of a text message to other conversations, marked "
        "`forwarded` and without anything of the original's sender. One copy per conversation."
    )
    async def forward_message(
        self, info: ChatrInfo, input: ForwardMessageInput
    ) -> list[MessageType]:
        return await resolvers.forward_message(  # type: ignore[return-value]
            info.context,
            message_id=input.message_id,
            conversation_ids=list(input.conversation_ids),
            client_message_id=input.client_message_id,
        )

    @strawberry.mutation(
        description="Pin a message for everyone in the conversation (either person in a DM; "
        "owner and admins in a group)."
    )
    async def pin_message(self, info: ChatrInfo, message_id: strawberry.ID) -> MessageType:
        return await resolvers.set_pinned(info.context, message_id=message_id, pinned=True)  # type: ignore[return-value]

    @strawberry.mutation(description="Unpin a pinned message (who may pin may unpin).")
    async def unpin_message(self, info: ChatrInfo, message_id: strawberry.ID) -> MessageType:
        return await resolvers.set_pinned(info.context, message_id=message_id, pinned=False)  # type: ignore[return-value]

    @strawberry.mutation(description="Bookmark a message, privately.")
    async def star_message(self, info: ChatrInfo, message_id: strawberry.ID) -> MessageType:
        return await resolvers.set_starred(info.context, message_id=message_id, starred=True)  # type: ignore[return-value]

    @strawberry.mutation(description="Remove a bookmark.")
    async def unstar_message(self, info: ChatrInfo, message_id: strawberry.ID) -> MessageType:
        return await resolvers.set_starred(info.context, message_id=message_id, starred=False)  # type: ignore[return-value]


@strawberry.type
class MessageChangeQuery:
    starred_messages: Connection[MessageType] = connection_field(
        MessageType,
        resolvers.starred_messages,
        description="My bookmarks, most recently starred first (in conversations I am in).",
    )
