"""Where uploaded bytes live: a local folder (the embedded default) or an S3 bucket.

Both backends stream: bytes are written and read in chunks, never held whole in memory.
The local folder is written by chatr's own upload endpoint (`write`); an S3 bucket is written
by the client itself, through a presigned POST whose policy enforces the type and size
(`post_form`). Reading an object for checks (its real type, an image's size, EXIF) goes
through `local_copy`: the file itself locally, a temporary download from S3.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from chatr.settings import Settings

#: Storage keys are chatr's own (`uploads/<owner>/<random>`): nothing else is accepted, so a
#: key can never climb out of the media folder.
_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")
#: How much is read from the network or disk at a time.
CHUNK_BYTES = 256 * 1024


class TooLarge(Exception):
    """More bytes arrived than the upload may have."""


@dataclass(frozen=True)
class PostForm:
    """A presigned POST: send these fields and then the file, as multipart/form-data."""

    url: str
    fields: dict[str, str]


class Storage(Protocol):
    #: `local` or `s3`.
    name: str

    async def write(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> int:
        """Store the stream under `key`; TooLarge (and nothing kept) past `max_bytes`."""
        ...

    async def size(self, key: str) -> int | None:
        """The stored object's size, None if there is none."""
        ...

    def local_copy(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A local file with the object's bytes, for as long as the context lasts."""
        ...

    async def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        """Store (or replace) `key` with a local file's bytes."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; nothing happens if it does not exist."""
        ...

    def post_form(
        self, key: str, *, content_type: str, max_bytes: int, expires_seconds: int
    ) -> PostForm | None:
        """A presigned POST for the client to upload to directly; None: upload to chatr."""
        ...

    def download_url(
        self, key: str, *, expires_seconds: int, file_name: str | None, content_type: str
    ) -> str | None:
        """A presigned GET; None: download from chatr (it signs its own URLs)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file chatr serves itself (local folder); None where the store serves it."""
        ...

    async def close(self) -> None: ...


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalStorage:
    """Objects as files under one folder (`CHATR_MEDIA_DIR`)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def write(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> int:
        path = self.path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        written = await spool(chunks, partial, max_bytes=max_bytes)
        await asyncio.to_thread(os.replace, partial, path)
        return written

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(key).stat)).st_size
        except FileNotFoundError:
            return None

    @asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path]:
        yield self.path(key)

    async def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        target = self.path(key)
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        await asyncio.to_thread(shutil.copyfile, path, partial)
        await asyncio.to_thread(os.replace, partial, target)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    def post_form(
        self, key: str, *, content_type: str, max_bytes: int, expires_seconds: int
    ) -> PostForm | None:
        return None

    def download_url(
        self, key: str, *, expires_seconds: int, file_name: str | None, content_type: str
    ) -> str | None:
        return None

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    async def close(self) -> None:
        return None


async def spool(chunks: AsyncIterator[bytes], path: Path, *, max_bytes: int) -> int:
    """Write `chunks` to `path` as they arrive; past `max_bytes` the file is removed and
    TooLarge raised, so a body longer than declared never lands whole."""
    written = 0
    handle = await asyncio.to_thread(open, path, "wb")
    try:
        async for chunk in chunks:
            written += len(chunk)
            if written > max_bytes:
                raise TooLarge
            if chunk:
                await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    await asyncio.to_thread(handle.close)
    return written


@asynccontextmanager
async def temporary_file(suffix: str = "") -> AsyncIterator[Path]:
    """A path to write a derived file to (a re-encoded image), removed afterwards."""
    handle, name = await asyncio.to_thread(tempfile.mkstemp, suffix)
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


class S3Storage:
    """Objects in one S3 bucket (or an S3-compatible store at `endpoint_url`), through boto3.

    Clients upload straight to the bucket with a presigned POST whose policy enforces the
    declared content type and the size range, and download with presigned GETs; chatr itself
    reads an object only to check it (`local_copy`: a streamed download to a temporary file)
    and writes one only to replace an image by its copy without EXIF. boto3 is blocking:
    every call runs in a worker thread.
    """

    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        endpoint_url: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
    ) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise ValueError("CHATR_STORAGE=s3 needs CHATR_S3_BUCKET")
        self.bucket = bucket
        credentials = (
            {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
            if access_key_id
            else {}
        )
        self.client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url or None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
            **credentials,
        )

    async def write(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> int:
        """Bytes that came through chatr (a GraphQL multipart upload): spooled to a temporary
        file, then put in the bucket. Presigned POSTs (post_form) skip chatr altogether."""
        async with temporary_file() as path:
            written = await spool(chunks, path, max_bytes=max_bytes)
            await self.put_file(key, path, content_type=content_type)
        return written

    async def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=check_key(key)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return int(head["ContentLength"])

    @asynccontextmanager
    async def local_copy(self, key: str) -> AsyncIterator[Path]:
        async with temporary_file() as path:
            await asyncio.to_thread(
                self.client.download_file, self.bucket, check_key(key), str(path)
            )
            yield path

    async def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.upload_file,
            str(path),
            self.bucket,
            check_key(key),
            ExtraArgs={"ContentType": content_type},
        )

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=check_key(key))

    def post_form(
        self, key: str, *, content_type: str, max_bytes: int, expires_seconds: int
    ) -> PostForm | None:
        presigned = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=check_key(key),
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=expires_seconds,
        )
        return PostForm(presigned["url"], dict(presigned["fields"]))

    def download_url(
        self, key: str, *, expires_seconds: int, file_name: str | None, content_type: str
    ) -> str | None:
        inline = content_type.startswith(("image/", "audio/", "video/"))
        disposition = "inline" if inline else "attachment"
        name = quote(file_name or "file", safe="")
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": check_key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": f"{disposition}; filename*=UTF-8''{name}",
            },
            ExpiresIn=expires_seconds,
        )
        return url

    def local_path(self, key: str) -> Path | None:
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def create_storage(settings: Settings) -> Storage:
    """The backend `CHATR_STORAGE` names: `local` (the default) or `s3`."""
    if settings.storage_backend == "local":
        return LocalStorage(settings.media_dir)
    if settings.storage_backend == "s3":
        return S3Storage(
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    raise ValueError(f"CHATR_STORAGE: {settings.storage_backend!r} is not local or s3")
