"""Messages: the Message type and sending one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import Parent

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import Message, MessageKind
from chatr.resolvers import conversations as conversation_resolvers
from chatr.resolvers import messages as resolvers
from chatr.schema.info import ChatrInfo
from chatr.schema.node import Node, thin_view
from chatr.schema.profiles import UserType
from chatr.schema.scalars import MessageKindEnum
from chatr.services.attachments import MEDIA_KINDS

if TYPE_CHECKING:
    # Types that lead back here (a conversation lists its messages, a group's change is told
    # by a SYSTEM message): named lazily, so these imports never run.
    from chatr.schema.conversations import ConversationType
    from chatr.schema.groups import SystemDetailsType
    from chatr.schema.media import AttachmentType
    from chatr.schema.message_changes import (
        MessageRevisionType,
        ReactionSummaryType,
        ReplySnapshotType,
    )


@strawberry.type(name="LinkPreview", description="What a linked page says about itself.")
class LinkPreviewType:
    url: str = strawberry.field(description="The page, after redirects.")
    title: str | None
    description: str | None
    image_url: str | None = strawberry.field(description="Its picture (og:image or oEmbed).")
    site_name: str | None
    author_name: str | None = strawberry.field(description="From oEmbed, where offered.")

    @classmethod
    def of(cls, data: dict[str, object]) -> LinkPreviewType:
        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        return cls(
            url=text("url") or "",
            title=text("title"),
            description=text("description"),
            image_url=text("imageUrl"),
            site_name=text("siteName"),
            author_name=text("authorName"),
        )


@strawberry.type(name="Message", description="One message in a conversation.")
class MessageType(Node):
    is_type_of = thin_view

    @strawberry.field
    def id(self, root: Parent[Message]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.MESSAGE, root.id))

    seq: int = strawberry.field(
        description="Position in its conversation: 1, 2, 3… without gaps. Order and resume by it."
    )
    kind: MessageKindEnum
    body: str | None = strawberry.field(description="Null once the message was unsent.")
    created_at: datetime
    edited_at: datetime | None = strawberry.field(description="When it was last edited.")
    deleted_at: datetime | None = strawberry.field(
        description="When it was unsent: a tombstone, its content is gone."
    )
    forwarded: bool = strawberry.field(
        description="A copy forwarded from another message (which it says nothing about)."
    )
    pinned_at: datetime | None = strawberry.field(description="When it was pinned, if it is.")

    @strawberry.field(description="Who unsent it: its sender, or an owner or admin of the group.")
    async def deleted_by(self, root: Parent[Message], info: ChatrInfo) -> UserType | None:
        if root.deleted_by_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.deleted_by_id)  # type: ignore[return-value]

    @strawberry.field(description="Who pinned it, if it is pinned.")
    async def pinned_by(self, root: Parent[Message], info: ChatrInfo) -> UserType | None:
        if root.pinned_by_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.pinned_by_id)  # type: ignore[return-value]

    @strawberry.field(
        description="Every version of an edited text, oldest first, with who wrote it and "
        "when (empty if never edited, and once unsent)."
    )
    async def edit_history(
        self, root: Parent[Message], info: ChatrInfo
    ) -> list[Annotated[MessageRevisionType, strawberry.lazy("chatr.schema.message_changes")]]:
        return await info.context.loaders.revisions_by_message.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="Reactions by emoji, most used first.")
    async def reactions(
        self, root: Parent[Message], info: ChatrInfo
    ) -> list[Annotated[ReactionSummaryType, strawberry.lazy("chatr.schema.message_changes")]]:
        return await info.context.loaders.reactions_by_message.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="The message this one replies to, as it was quoted.")
    def reply_to(
        self, root: Parent[Message]
    ) -> Annotated[ReplySnapshotType, strawberry.lazy("chatr.schema.message_changes")] | None:
        return root.reply_snapshot  # type: ignore[return-value]

    @strawberry.field(description="Group members the text @mentions, resolved when written.")
    async def mentions(self, root: Parent[Message], info: ChatrInfo) -> list[UserType]:
        ids = await info.context.loaders.mentions_by_message.load(root.id)
        users = await info.context.loaders.user_by_id.load_many(ids)
        return [user for user in users if user is not None]  # type: ignore[misc]

    @strawberry.field(
        description="The photos, voice note, video or files it carries (none for TEXT; gone "
        "once unsent)."
    )
    async def attachments(
        self, root: Parent[Message], info: ChatrInfo
    ) -> list[Annotated[AttachmentType, strawberry.lazy("chatr.schema.media")]]:
        if root.kind not in MEDIA_KINDS:
            return []
        return await info.context.loaders.attachments_by_message.load(root.id)  # type: ignore[return-value]

    @strawberry.field(description="Who played this voice note (`markPlayed`), first first.")
    async def played_by(self, root: Parent[Message], info: ChatrInfo) -> list[UserType]:
        if root.kind != MessageKind.AUDIO:
            return []
        ids = await info.context.loaders.players_by_message.load(root.id)
        users = await info.context.loaders.user_by_id.load_many(ids)
        return [user for user in users if user is not None]  # type: ignore[misc]

    @strawberry.field(
        description="A preview of the first link in the text, fetched by the server after "
        "sending (a MessageUpdatedEvent says when it arrives); null until then, or if none."
    )
    def link_preview(self, root: Parent[Message]) -> LinkPreviewType | None:
        if not root.link_preview:
            return None
        return LinkPreviewType.of(root.link_preview)

    @strawberry.field(description="Whether I starred it (my private bookmark).")
    async def starred(self, root: Parent[Message], info: ChatrInfo) -> bool:
        viewer = await info.context.viewer()
        return await info.context.loaders.starred.load((viewer.id, root.id))

    @strawberry.field
    def conversation_id(self, root: Parent[Message]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.CONVERSATION, root.conversation_id))

    @strawberry.field(description="The sender's own idempotency key; null for everyone else.")
    async def client_message_id(self, root: Parent[Message], info: ChatrInfo) -> str | None:
        if root.sender_id is None or not await info.context.viewer_is(root.sender_id):
            return None
        return root.client_id

    @strawberry.field(
        description="The conversation this message belongs to. NOT_FOUND unless I am in it "
        "now: a message I keep (one I sent, then left the group) does not lead back in."
    )
    async def conversation(
        self, root: Parent[Message], info: ChatrInfo
    ) -> Annotated[ConversationType, strawberry.lazy("chatr.schema.conversations")]:
        return await conversation_resolvers.reached(  # type: ignore[return-value]
            info.context, conversation_id=root.conversation_id
        )

    @strawberry.field(description="Who sent it; for a SYSTEM message, who made the change.")
    async def sender(self, root: Parent[Message], info: ChatrInfo) -> UserType | None:
        if root.sender_id is None:
            return None
        return await info.context.loaders.user_by_id.load(root.sender_id)  # type: ignore[return-value]

    @strawberry.field(
        description="For SYSTEM messages (kind SYSTEM): what changed in the group, so clients "
        "can write their own text. Null for every other kind."
    )
    def system(
        self, root: Parent[Message]
    ) -> Annotated[SystemDetailsType, strawberry.lazy("chatr.schema.groups")] | None:
        if root.kind != MessageKind.SYSTEM or not root.extra:
            return None
        return root.extra  # type: ignore[return-value]


@strawberry.input(description="Send to a user (DM, created on first message) or a conversation.")
class SendMessageInput:
    body: str | None = strawberry.field(
        default=None,
        description="1-10,000 characters; with `uploadIds`, the optional caption.",
    )
    client_message_id: str = strawberry.field(
        description="Your idempotency key (1-64 chars): retrying the same send with it "
        "returns the original message; reusing it for another body or conversation is CONFLICT."
    )
    recipient_id: strawberry.ID | None = None
    conversation_id: strawberry.ID | None = None
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None, description="Quote an earlier message of the same conversation."
    )
    upload_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Uploads of mine (`createUpload`, bytes sent) to carry: a photo, voice "
        "note, video or file message (up to 10). Each upload is used once.",
    )


@strawberry.type
class MessageMutation:
    @strawberry.mutation(
        description="Send a message. Retrying it with the same clientMessageId is safe: the "
        "original is returned, after the same permission checks as a new message."
    )
    async def send_message(self, info: ChatrInfo, input: SendMessageInput) -> MessageType:
        return await resolvers.send_message(  # type: ignore[return-value]
            info.context,
            body=input.body,
            client_message_id=input.client_message_id,
            recipient_id=input.recipient_id,
            conversation_id=input.conversation_id,
            reply_to_id=input.reply_to_id,
            upload_ids=input.upload_ids,
        )
