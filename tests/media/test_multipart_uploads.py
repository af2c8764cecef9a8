"""The GraphQL multipart request spec: `uploadFile` takes a small file with the operation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatr.settings import Settings
from tests.media.helpers import (
    EXECUTABLE,
    MESSAGES,
    UPLOAD_FILE,
    jpeg_with_gps,
    multipart,
    png,
    send_media,
    upload_file,
)
from tests.support.api import register
from tests.support.servers import RunningApp, in_process_app


def _code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


def _stored_files(media_dir: Path) -> list[Path]:
    return [path for path in media_dir.rglob("*") if path.is_file()]


async def test_a_photo_sent_with_the_operation_is_stored_measured_and_sendable(
    app: RunningApp, settings: Settings
) -> None:
    # given alice uploads a photo with GPS EXIF in one multipart request
    alice, bob = await register(app.http), await register(app.http)
    response = await upload_file(
        alice, jpeg_with_gps(64, 48), name="a.jpg", content_type="image/jpeg"
    )
    # then it is stored and measured like any upload
    assert response.status_code == 200, response.text
    uploaded = response.json()["data"]["uploadFile"]
    assert uploaded["kind"] == "IMAGE" and uploaded["contentType"] == "image/jpeg"
    assert (uploaded["width"], uploaded["height"]) == (64, 48)
    assert uploaded["fileName"] == "a.jpg" and uploaded["expiresAt"]
    # and its id sends it to bob, who sees the attachment without its location
    sent = await send_media(alice, [uploaded["uploadId"]], to=bob, caption="look")
    (seen,) = (await bob.call(MESSAGES, id=sent["conversationId"]))["conversation"]["messages"][
        "edges"
    ][0]["node"]["attachments"]
    assert (seen["width"], seen["height"]) == (64, 48)
    download = await bob.http.get(seen["url"])
    assert download.status_code == 200
    assert b"Test Camera Co" not in download.content
    assert settings.media_dir is not None and _stored_files(settings.media_dir)


async def test_a_batch_may_upload_a_file_per_operation(app: RunningApp) -> None:
    alice = await register(app.http)
    operation = {"query": UPLOAD_FILE, "variables": {"file": None, "kind": "IMAGE"}}
    response = await multipart(
        alice.http,
        token=alice.token,
        files={"0": ("a.png", png(10, 10), "image/png"), "1": ("b.png", png(20, 5), "image/png")},
        operations=[operation, operation],
        file_map={"0": ["0.variables.file"], "1": ["1.variables.file"]},
    )
    assert response.status_code == 200, response.text
    sizes = [
        (item["data"]["uploadFile"]["width"], item["data"]["uploadFile"]["height"])
        for item in response.json()
    ]
    assert sizes == [(10, 10), (20, 5)]


async def test_a_disguised_executable_is_refused_and_not_kept(
    app: RunningApp, settings: Settings
) -> None:
    alice = await register(app.http)
    response = await upload_file(alice, EXECUTABLE, name="cat.jpg", content_type="image/jpeg")
    assert _code(response) == "BAD_USER_INPUT"
    assert response.json()["errors"][0]["extensions"]["reason"] == "EXECUTABLE"
    assert settings.media_dir is not None and not _stored_files(settings.media_dir)


async def test_a_form_post_without_a_preflight_header_is_refused_before_it_is_read(
    app: RunningApp, settings: Settings
) -> None:
    # a page on another site can post a form without a CORS preflight; it cannot add headers
    response = await multipart(
        app.http,
        token=None,
        files={"0": ("a.png", png(), "image/png")},
        operations={"query": UPLOAD_FILE, "variables": {"file": None, "kind": "IMAGE"}},
        file_map={"0": ["variables.file"]},
    )
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
    assert response.json()["errors"][0]["extensions"]["reason"] == "PREFLIGHT_REQUIRED"
    assert settings.media_dir is not None and not _stored_files(settings.media_dir)


async def test_the_preflight_header_alone_lets_the_request_through_to_the_auth_check(
    app: RunningApp,
) -> None:
    response = await multipart(
        app.http,
        token=None,
        files={"0": ("a.png", png(), "image/png")},
        operations={"query": UPLOAD_FILE, "variables": {"file": None, "kind": "IMAGE"}},
        file_map={"0": ["variables.file"]},
        headers={"GraphQL-Require-Preflight": "1"},
    )
    assert _code(response) == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("operations", "file_map", "problem"),
    [
        ("not json", {"0": ["variables.file"]}, "operations"),
        ({"query": UPLOAD_FILE, "variables": {"file": None}}, ["variables.file"], "map"),
        ({"query": UPLOAD_FILE, "variables": {"file": None}}, {"0": ["variables.nope"]}, "nope"),
        ({"query": UPLOAD_FILE, "variables": {"file": None}}, {"9": ["variables.file"]}, "'9'"),
        ({"query": UPLOAD_FILE, "variables": {"file": "x"}}, {"0": ["variables.file"]}, "null"),
        ({"query": UPLOAD_FILE, "variables": {"file": None}}, {"0": ["0.file"]}, "0.file"),
    ],
)
async def test_a_malformed_multipart_request_is_a_bad_request(
    app: RunningApp, operations: Any, file_map: Any, problem: str
) -> None:
    alice = await register(app.http)
    response = await alice.http.post(
        "/graphql",
        data={
            "operations": operations if isinstance(operations, str) else json.dumps(operations),
            "map": json.dumps(file_map),
        },
        files={"0": ("a.png", png(), "image/png")},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 400, response.text
    assert _code(response) == "BAD_REQUEST"
    assert problem in response.json()["errors"][0]["message"]


async def test_a_file_variable_sent_as_json_is_bad_user_input(app: RunningApp) -> None:
    alice = await register(app.http)
    response = await alice.http.post(
        "/graphql",
        json={"query": UPLOAD_FILE, "variables": {"file": "aGVsbG8=", "kind": "IMAGE"}},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert _code(response) == "BAD_USER_INPUT"
    assert response.json()["errors"][0]["extensions"]["field"] == "file"


@pytest.fixture
async def small_multipart_app(settings: Settings, database: str) -> AsyncIterator[RunningApp]:
    limited = settings.with_overrides(max_multipart_bytes=4096, max_multipart_files=1)
    async with in_process_app(limited) as running:
        yield running


async def test_a_body_over_the_multipart_limit_is_413(small_multipart_app: RunningApp) -> None:
    alice = await register(small_multipart_app.http)
    response = await upload_file(
        alice, png(200, 200) + b"\0" * 8192, name="big.png", content_type="image/png"
    )
    assert response.status_code == 413
    assert _code(response) == "PAYLOAD_TOO_LARGE"


async def test_more_files_than_allowed_is_a_bad_request(small_multipart_app: RunningApp) -> None:
    alice = await register(small_multipart_app.http)
    response = await multipart(
        alice.http,
        token=alice.token,
        files={"0": ("a.png", png(4, 4), "image/png"), "1": ("b.png", png(4, 4), "image/png")},
        operations={"query": UPLOAD_FILE, "variables": {"file": None, "kind": "IMAGE"}},
        file_map={"0": ["variables.file"], "1": ["variables.file"]},
    )
    assert response.status_code == 400
    assert _code(response) == "BAD_REQUEST"
