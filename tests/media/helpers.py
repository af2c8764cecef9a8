"""Files to upload, made on the spot, and the upload protocol as a client runs it."""

from __future__ import annotations

import io
import json
import math
import struct
import wave
from typing import Any

import httpx
from PIL import Image

from tests.support.api import Account

CREATE_UPLOAD = """
mutation Create(
  $kind: AttachmentKind!, $type: String!, $size: Int!, $name: String,
  $duration: Float, $waveform: [Float!], $purpose: UploadPurpose = MESSAGE
) {
  createUpload(
    kind: $kind, contentType: $type, size: $size, fileName: $name,
    durationSeconds: $duration, waveform: $waveform, purpose: $purpose
  ) { id method url fields { name value } expiresAt maxBytes }
}
"""
ATTACHMENT_FIELDS = """
  id kind contentType size fileName width height thumbnail durationSeconds waveform url
"""
SEND_MEDIA = f"""
mutation Send($input: SendMessageInput!) {{
  sendMessage(input: $input) {{
    id seq kind body conversationId attachments {{ {ATTACHMENT_FIELDS} }} playedBy {{ id }}
  }}
}}
"""
MESSAGES = f"""
query History($id: ID!) {{
  conversation(id: $id) {{
    messages(first: 50) {{
      edges {{ node {{
        id seq kind body deletedAt attachments {{ {ATTACHMENT_FIELDS} }} playedBy {{ id }}
      }} }}
    }}
  }}
}}
"""
MARK_PLAYED = "mutation Played($m: ID!) { markPlayed(messageId: $m) { id playedBy { id } } }"
UNSEND = "mutation Unsend($m: ID!) { unsendMessage(messageId: $m) { id deletedAt } }"


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_with_gps(width: int = 64, height: int = 48) -> bytes:
    """A photo whose EXIF says where it was taken (GPS IFD) and with which camera."""
    image = Image.new("RGB", (width, height), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "Test Camera Co"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPSInfo
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    """A 16-bit mono tone that swells: loud at the end, quiet at the start."""
    frames = int(seconds * rate)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        samples = (
            int(30000 * (i / frames) * math.sin(2 * math.pi * 440 * i / rate))
            for i in range(frames)
        )
        writer.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


#: The start of a Windows executable: what a disguised `.jpg` really is.
EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


async def create_upload(
    account: Account,
    *,
    kind: str,
    content_type: str,
    size: int,
    name: str | None = "file",
    **extra: Any,
) -> dict[str, Any]:
    variables: dict[str, Any] = {"kind": kind, "type": content_type, "size": size, "name": name}
    variables.update(extra)
    return (await account.call(CREATE_UPLOAD, **variables))["createUpload"]


async def upload(
    account: Account, data: bytes, *, kind: str, content_type: str, name: str = "file", **extra: Any
) -> str:
    """The whole protocol on chatr's own endpoint: declare, PUT the bytes; the upload's id."""
    ticket = await create_upload(
        account, kind=kind, content_type=content_type, size=len(data), name=name, **extra
    )
    assert ticket["method"] == "PUT", ticket
    response = await account.http.put(ticket["url"], content=data)
    assert response.status_code == 200, response.text
    return str(ticket["id"])


async def send_media(
    account: Account,
    upload_ids: list[str],
    *,
    conversation_id: str | None = None,
    to: Account | None = None,
    caption: str | None = None,
    client_id: str = "media-1",
) -> dict[str, Any]:
    message_input: dict[str, Any] = {"uploadIds": upload_ids, "clientMessageId": client_id}
    if caption is not None:
        message_input["body"] = caption
    if conversation_id is not None:
        message_input["conversationId"] = conversation_id
    if to is not None:
        message_input["recipientId"] = to.id
    return (await account.call(SEND_MEDIA, input=message_input))["sendMessage"]


UPLOAD_FILE = """
mutation Up($file: Upload!, $kind: AttachmentKind!) {
  uploadFile(file: $file, kind: $kind) {
    uploadId kind contentType size fileName width height expiresAt
  }
}
"""


async def multipart(
    http: httpx.AsyncClient,
    *,
    token: str | None,
    files: dict[str, tuple[str, bytes, str]],
    operations: Any,
    file_map: dict[str, list[str]],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A multipart request exactly as apollo-upload-client sends it."""
    sent_headers = dict(headers or {})
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    return await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps(file_map)},
        files=files,
        headers=sent_headers,
    )


async def upload_file(
    account: Account, data: bytes, *, name: str, content_type: str, kind: str = "IMAGE"
) -> httpx.Response:
    return await multipart(
        account.http,
        token=account.token,
        files={"0": (name, data, content_type)},
        operations={"query": UPLOAD_FILE, "variables": {"file": None, "kind": kind}},
        file_map={"0": ["variables.file"]},
    )
