"""Media: uploads (`createUpload`), what a message carries (`Attachment`), voice notes played."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Parent
from strawberry.file_uploads import Upload

from chatr import global_ids
from chatr.global_ids import Kind
from chatr.models import Attachment, AttachmentKind, UploadPurpose
from chatr.resolvers import media as resolvers
from chatr.schema.conversations import ConversationType
from chatr.schema.info import ChatrInfo
from chatr.schema.messages import MessageType
from chatr.schema.node import Node, thin_view
from chatr.schema.profiles import UserType
from chatr.services.uploads import UploadTicket

strawberry.enum(
    AttachmentKind,
    name="AttachmentKind",
    description="IMAGE (jpeg, png, gif, webp), AUDIO (a voice note: webm, mp4/m4a, mpeg, ogg, "
    "wav), VIDEO (mp4, quicktime, webm) or FILE (pdf, doc(x), xls(x), ppt(x), txt, zip; or "
    "any of the others, sent as a document).",
)
AttachmentKindEnum = AttachmentKind
strawberry.enum(
    UploadPurpose,
    name="UploadPurpose",
    description="What an upload is for: a MESSAGE, or an AVATAR (JPEG, PNG or WebP, at most "
    "5 MB; resized to 400, 320 and 96 px squares) or COVER (at most 10 MB; 1200x600 and "
    "600x300) of mine or of a group I run.",
)
UploadPurposeEnum = UploadPurpose


def _fact(root: Attachment, name: str) -> object:
    return (root.extra or {}).get(name)


@strawberry.type(
    name="Attachment",
    description="One file a message carries, with what the server measured of it.",
)
class AttachmentType(Node):
    is_type_of = thin_view
    kind: AttachmentKindEnum

    @strawberry.field
    def id(self, root: Parent[Attachment]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.ATTACHMENT, root.id))

    @strawberry.field(description="Its real type, read from its bytes.")
    def content_type(self, root: Parent[Attachment]) -> str:
        return root.content_type

    @strawberry.field(description="Bytes.")
    def size(self, root: Parent[Attachment]) -> int:
        return root.size_bytes

    @strawberry.field(description="The name it was uploaded with (no folders).")
    def file_name(self, root: Parent[Attachment]) -> str | None:
        return root.filename

    @strawberry.field(description="IMAGE: pixels wide, as displayed.")
    def width(self, root: Parent[Attachment]) -> int | None:
        value = _fact(root, "width")
        return None if value is None else int(str(value))

    @strawberry.field(description="IMAGE: pixels high, as displayed.")
    def height(self, root: Parent[Attachment]) -> int | None:
        value = _fact(root, "height")
        return None if value is None else int(str(value))

    @strawberry.field(
        description="IMAGE: a tiny JPEG as a data URL, to show blurred until the image loads."
    )
    def thumbnail(self, root: Parent[Attachment]) -> str | None:
        value = _fact(root, "thumbnail")
        return None if value is None else str(value)

    @strawberry.field(
        description="AUDIO and VIDEO: seconds; measured by the server where it reads the "
        "format (WAV, MP4, M4A, MOV), else as the client said."
    )
    def duration_seconds(self, root: Parent[Attachment]) -> float | None:
        value = _fact(root, "durationSeconds")
        return None if value is None else float(str(value))

    @strawberry.field(
        description="AUDIO: 100 bars from 0 to 1, loudest 1; computed from WAV, else as the "
        "client said."
    )
    def waveform(self, root: Parent[Attachment]) -> list[float] | None:
        value = _fact(root, "waveform")
        return None if not isinstance(value, list) else [float(v) for v in value]

    @strawberry.field(
        description="Where to download it: a signed URL that works for a few minutes (ask "
        "again for a new one). Only participants of the conversation see it."
    )
    def url(self, root: Parent[Attachment], info: ChatrInfo) -> str:
        return resolvers.download_url(info.context, root)


@strawberry.type(name="UploadField", description="One form field of a presigned POST.")
class UploadFieldType:
    name: str
    value: str


@strawberry.type(
    name="UploadTicket",
    description="Where to send an upload's bytes. `method` PUT: send the raw bytes as the "
    "body to `url` (chatr's own endpoint). `method` POST: send multipart/form-data to `url` "
    "with every field of `fields`, then the file as `file` (S3; its policy enforces the "
    "type and size). Then pass `id` in `sendMessage(input: {uploadIds})`.",
)
class UploadType(Node):
    is_type_of = thin_view

    @strawberry.field
    def id(self, root: Parent[UploadTicket]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.UPLOAD, root.upload.id))

    @strawberry.field(description="PUT or POST.")
    def method(self, root: Parent[UploadTicket]) -> str:
        return root.method

    @strawberry.field
    def url(self, root: Parent[UploadTicket]) -> str:
        return root.url

    @strawberry.field(description="POST only: the form fields to send before the file.")
    def fields(self, root: Parent[UploadTicket]) -> list[UploadFieldType]:
        return [UploadFieldType(name=name, value=value) for name, value in root.fields.items()]

    @strawberry.field(description="The URL accepts the bytes until then.")
    def expires_at(self, root: Parent[UploadTicket]) -> datetime:
        return root.expires_at

    @strawberry.field(description="The most bytes it accepts (the size declared).")
    def max_bytes(self, root: Parent[UploadTicket]) -> int:
        return root.upload.size_bytes


@strawberry.type(
    name="UploadedFile",
    description="A file sent with `uploadFile`, stored and checked: pass `uploadId` in "
    "`sendMessage(input: {uploadIds})` or `setProfilePicture`, as any upload's id.",
)
class UploadedFileType:
    @strawberry.field(description="The upload's id, as `UploadTicket.id` would be.")
    def upload_id(self, root: Parent[Attachment]) -> strawberry.ID:
        return strawberry.ID(global_ids.encode(Kind.UPLOAD, root.id))

    @strawberry.field
    def kind(self, root: Parent[Attachment]) -> AttachmentKindEnum:
        return root.kind

    @strawberry.field(description="Its real type, read from its bytes.")
    def content_type(self, root: Parent[Attachment]) -> str:
        return root.content_type

    @strawberry.field(description="Bytes stored (an image's EXIF removed).")
    def size(self, root: Parent[Attachment]) -> int:
        return root.size_bytes

    @strawberry.field(description="The name it was uploaded with (no folders).")
    def file_name(self, root: Parent[Attachment]) -> str | None:
        return root.filename

    @strawberry.field(description="IMAGE: pixels wide, as displayed.")
    def width(self, root: Parent[Attachment]) -> int | None:
        value = _fact(root, "width")
        return None if value is None else int(str(value))

    @strawberry.field(description="IMAGE: pixels high, as displayed.")
    def height(self, root: Parent[Attachment]) -> int | None:
        value = _fact(root, "height")
        return None if value is None else int(str(value))

    @strawberry.field(description="AUDIO and VIDEO: seconds, where known.")
    def duration_seconds(self, root: Parent[Attachment]) -> float | None:
        value = _fact(root, "durationSeconds")
        return None if value is None else float(str(value))

    @strawberry.field(description="Unused by then, it is deleted.")
    def expires_at(self, root: Parent[Attachment]) -> datetime | None:
        return root.expires_at


@strawberry.type
class MediaMutation:
    @strawberry.mutation(
        description="Start an upload: declare its kind, type and size (at most 50 MB; the "
        "types of `AttachmentKind`). Answers where to send the bytes; what arrives is checked "
        "by its real type. Unused uploads are deleted after an hour. AUDIO and VIDEO may say "
        "their duration, AUDIO its 100-bar waveform (0-1), for formats the server does not "
        "measure itself. RATE_LIMITED past the upload rate; QUOTA_EXCEEDED past my storage "
        "quota."
    )
    async def create_upload(
        self,
        info: ChatrInfo,
        kind: AttachmentKindEnum,
        content_type: str,
        size: int,
        file_name: str | None = None,
        duration_seconds: float | None = None,
        waveform: list[float] | None = None,
        purpose: UploadPurposeEnum = UploadPurposeEnum.MESSAGE,
    ) -> UploadType:
        return await resolvers.create_upload(  # type: ignore[return-value]
            info.context,
            purpose=purpose,
            kind=kind,
            content_type=content_type,
            size=size,
            file_name=file_name,
            duration_seconds=duration_seconds,
            waveform=waveform,
        )

    @strawberry.mutation(
        description="Upload a small file with the operation itself (the GraphQL multipart "
        "request spec: apollo-upload-client, urql, gql), up to CHATR_MAX_MULTIPART_BYTES "
        "(10 MB) per request; larger ones take `createUpload`. The same checks as "
        "`createUpload`: `kind` and `purpose` as there, the type read from the bytes, the "
        "rate limit and the quota. Send 'Authorization' (or 'GraphQL-Require-Preflight') "
        "with it: form posts without one are refused."
    )
    async def upload_file(
        self,
        info: ChatrInfo,
        file: Upload,
        kind: AttachmentKindEnum,
        duration_seconds: float | None = None,
        waveform: list[float] | None = None,
        purpose: UploadPurposeEnum = UploadPurposeEnum.MESSAGE,
    ) -> UploadedFileType:
        return await resolvers.upload_file(  # type: ignore[return-value]
            info.context,
            file=file,
            kind=kind,
            duration_seconds=duration_seconds,
            waveform=waveform,
            purpose=purpose,
        )

    @strawberry.mutation(
        description="I played this voice note: its sender and the conversation see it in "
        "`playedBy` (a durable MessagePlayedEvent)."
    )
    async def mark_played(self, info: ChatrInfo, message_id: strawberry.ID) -> MessageType:
        return await resolvers.mark_played(info.context, message_id=message_id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Set my AVATAR or COVER from an upload of mine made for it (purpose AVATAR "
        "or COVER), or remove it (no uploadId). The old picture's files are deleted; people I "
        "share a conversation with get a ProfileUpdatedEvent."
    )
    async def set_profile_picture(
        self,
        info: ChatrInfo,
        purpose: UploadPurposeEnum,
        upload_id: strawberry.ID | None = None,
    ) -> UserType:
        return await resolvers.set_profile_picture(  # type: ignore[return-value]
            info.context, purpose=purpose, upload_id=upload_id
        )

    @strawberry.mutation(
        description="Set a group's AVATAR or COVER (its owner and admins) from an upload of "
        "mine made for it, or remove it (no uploadId); told as a SYSTEM message."
    )
    async def set_group_picture(
        self,
        info: ChatrInfo,
        conversation_id: strawberry.ID,
        purpose: UploadPurposeEnum,
        upload_id: strawberry.ID | None = None,
    ) -> ConversationType:
        return await resolvers.set_group_picture(  # type: ignore[return-value]
            info.context, conversation_id=conversation_id, purpose=purpose, upload_id=upload_id
        )
