"""Media on S3: moto in server mode on a free loopback port, driven by the real boto3 client
(chatr's) and by plain HTTP (the client's presigned POST and GET).

moto accepts a presigned POST without evaluating its policy's conditions, so what the policy
says is checked as written (the document S3 evaluates), and chatr's own check after the
upload (size, real type) is what refuses a violation here; on S3 itself the POST is refused
first.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import httpx
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from PIL import Image

from chatr.models.base import utcnow
from chatr.services import uploads
from chatr.settings import Settings
from tests.media.helpers import (
    EXECUTABLE,
    MESSAGES,
    create_upload,
    jpeg_with_gps,
    png,
    send_media,
    upload_file,
)
from tests.support.api import Account, GraphQLError, register
from tests.support.ids import pk
from tests.support.servers import RunningApp, in_process_app

BUCKET = "chatr-media"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@dataclass(frozen=True)
class S3:
    endpoint: str
    client: Any  # boto3's S3 client, to look into the bucket

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
def s3() -> Iterator[S3]:
    """A moto S3 server on a free loopback port, with an empty bucket; stopped afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, **CREDENTIALS)
    try:
        client.create_bucket(Bucket=BUCKET)
        yield S3(endpoint, client)
    finally:
        client.close()
        # moto keeps its buckets in this process, not in the server: forget them too.
        httpx.post(f"{endpoint}/moto-api/reset")
        server.stop()


@pytest.fixture
async def s3_app(settings: Settings, database: str, s3: S3) -> AsyncIterator[RunningApp]:
    on_s3 = settings.with_overrides(
        storage_backend="s3",
        s3_bucket=BUCKET,
        s3_endpoint_url=s3.endpoint,
        s3_access_key_id=CREDENTIALS["aws_access_key_id"],
        s3_secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )
    async with in_process_app(on_s3) as app:
        yield app


async def _post(ticket: dict[str, Any], data: bytes, content_type: str) -> httpx.Response:
    """The client's side of a presigned POST: the fields, then the file."""
    assert ticket["method"] == "POST", ticket
    fields = {field["name"]: field["value"] for field in ticket["fields"]}
    async with httpx.AsyncClient() as client:
        return await client.post(
            ticket["url"], data=fields, files={"file": ("upload", data, content_type)}
        )


async def _upload(
    account: Account, data: bytes, *, kind: str, content_type: str, size: int | None = None
) -> str:
    ticket = await create_upload(
        account, kind=kind, content_type=content_type, size=size or len(data)
    )
    response = await _post(ticket, data, content_type)
    assert response.status_code == 204, response.text
    return str(ticket["id"])


async def _codes(call: Any) -> list[str]:
    with pytest.raises(GraphQLError) as refused:
        await call
    return refused.value.codes


async def test_a_photo_goes_to_the_bucket_and_downloads_without_its_location(
    s3_app: RunningApp, s3: S3
) -> None:
    # given alice uploads a photo with GPS EXIF straight to the bucket
    alice, bob = await register(s3_app.http), await register(s3_app.http)
    upload_id = await _upload(alice, jpeg_with_gps(64, 48), kind="IMAGE", content_type="image/jpeg")
    # when she sends it to bob
    sent = await send_media(alice, [upload_id], to=bob, caption="here")
    # then the server read it from the bucket: measured, and stored again without EXIF
    (attachment,) = sent["attachments"]
    assert (attachment["width"], attachment["height"]) == (64, 48)
    (key,) = s3.keys()
    stored = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert not Image.open(io.BytesIO(stored)).getexif()
    # and bob downloads it from the bucket with a presigned GET that lives five minutes
    (seen,) = (await bob.call(MESSAGES, id=sent["conversationId"]))["conversation"]["messages"][
        "edges"
    ][0]["node"]["attachments"]
    assert seen["url"].startswith(s3.endpoint)
    assert parse_qs(urlparse(seen["url"]).query)["X-Amz-Expires"] == ["300"]
    async with httpx.AsyncClient() as client:
        response = await client.get(seen["url"])
    assert response.status_code == 200 and response.content == stored


async def test_the_post_policy_enforces_the_declared_type_and_size(s3_app: RunningApp) -> None:
    alice = await register(s3_app.http)
    ticket = await create_upload(alice, kind="IMAGE", content_type="image/png", size=1234)
    fields = {field["name"]: field["value"] for field in ticket["fields"]}
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert ["content-length-range", 1, 1234] in policy["conditions"]
    assert fields["Content-Type"] == "image/png"
    assert fields["key"].startswith(f"uploads/{pk(alice.id)}/")


async def test_more_bytes_than_declared_are_refused_and_deleted(s3_app: RunningApp, s3: S3) -> None:
    # given a PNG declared at 100 bytes and posted whole (S3 itself would refuse the POST)
    alice, bob = await register(s3_app.http), await register(s3_app.http)
    upload_id = await _upload(alice, png(), kind="IMAGE", content_type="image/png", size=100)
    # when it is sent, it is refused, and the object is gone
    assert await _codes(send_media(alice, [upload_id], to=bob)) == ["BAD_USER_INPUT"]
    assert s3.keys() == []


async def test_a_disguised_executable_is_refused_and_deleted(s3_app: RunningApp, s3: S3) -> None:
    alice, bob = await register(s3_app.http), await register(s3_app.http)
    upload_id = await _upload(alice, EXECUTABLE, kind="IMAGE", content_type="image/jpeg")
    with pytest.raises(GraphQLError) as refused:
        await send_media(alice, [upload_id], to=bob)
    assert refused.value.errors[0]["extensions"]["reason"] == "EXECUTABLE"
    assert s3.keys() == []
    # and it is gone: sending it again finds nothing
    assert await _codes(send_media(alice, [upload_id], to=bob, client_id="again")) == ["NOT_FOUND"]


async def test_only_participants_reach_the_download(s3_app: RunningApp) -> None:
    alice, bob, mallory = [await register(s3_app.http) for _ in range(3)]
    upload_id = await _upload(
        alice, b"%PDF-1.7\n%minutes\n", kind="FILE", content_type="application/pdf"
    )
    sent = await send_media(alice, [upload_id], to=bob)
    # mallory knows the conversation and the upload, and gets neither the message nor a URL
    assert await _codes(mallory.call(MESSAGES, id=sent["conversationId"])) == ["NOT_FOUND"]
    assert await _codes(send_media(mallory, [upload_id], to=alice, client_id="m")) == ["NOT_FOUND"]
    # while bob, a participant, downloads it with the signed URL the message hands him
    (seen,) = (await bob.call(MESSAGES, id=sent["conversationId"]))["conversation"]["messages"][
        "edges"
    ][0]["node"]["attachments"]
    assert "X-Amz-Signature" in parse_qs(urlparse(seen["url"]).query)
    async with httpx.AsyncClient() as client:
        signed = await client.get(seen["url"])
    assert signed.status_code == 200 and signed.content == b"%PDF-1.7\n%minutes\n"
    assert signed.headers["content-disposition"].startswith("attachment")


async def test_unused_uploads_expire_from_the_bucket(
    s3_app: RunningApp, s3: S3, settings: Settings
) -> None:
    alice, bob = await register(s3_app.http), await register(s3_app.http)
    used = await _upload(alice, png(), kind="IMAGE", content_type="image/png")
    await send_media(alice, [used], to=bob)
    await _upload(alice, png(), kind="IMAGE", content_type="image/png")
    assert len(s3.keys()) == 2
    later = utcnow() + timedelta(seconds=settings.upload_ttl_seconds + 1)
    assert await uploads.sweep_expired(s3_app.runtime, now=later) == 1
    assert len(s3.keys()) == 1


async def test_a_file_sent_with_the_operation_goes_to_the_bucket(
    s3_app: RunningApp, s3: S3
) -> None:
    alice = await register(s3_app.http)
    response = await upload_file(alice, png(12, 8), name="p.png", content_type="image/png")
    uploaded = response.json()["data"]["uploadFile"]
    assert (uploaded["width"], uploaded["height"]) == (12, 8)
    (key,) = s3.keys()
    stored = s3.client.get_object(Bucket=BUCKET, Key=key)
    assert stored["ContentType"] == "image/png"
    assert Image.open(io.BytesIO(stored["Body"].read())).size == (12, 8)
