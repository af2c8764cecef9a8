"""Photos, voice notes, videos and files on the embedded default: declared with createUpload,
streamed to chatr's own endpoint, checked by what they really are, sent, downloaded only by
participants, removed with an unsent message, and deleted when never used."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from chatr.models import Attachment
from chatr.models.base import utcnow
from chatr.services import uploads
from chatr.settings import Settings
from tests.media.helpers import (
    EXECUTABLE,
    MARK_PLAYED,
    MESSAGES,
    UNSEND,
    create_upload,
    jpeg_with_gps,
    png,
    send_media,
    upload,
    wav,
)
from tests.support.api import Account, GraphQLError, register
from tests.support.ids import Kind, global_id, pk
from tests.support.servers import RunningApp, in_process_app
from tests.support.ws import subscribe


async def _codes(call: Any) -> list[str]:
    with pytest.raises(GraphQLError) as refused:
        await call
    return refused.value.codes


async def _history(account: Account, conversation_id: str) -> list[dict[str, Any]]:
    found = (await account.call(MESSAGES, id=conversation_id))["conversation"]["messages"]
    return [edge["node"] for edge in reversed(found["edges"])]


async def _stored_keys(app: RunningApp) -> list[str]:
    async with app.runtime.db.reader() as session:
        return list(await session.scalars(select(Attachment.storage_key)))


def _media_files(settings: Settings) -> list[Path]:
    return [path for path in settings.media_dir.rglob("*") if path.is_file()]


@pytest.mark.smoke
async def test_a_photo_goes_up_is_sent_and_downloads_without_its_location(
    app: RunningApp,
) -> None:
    # given a DM, and a photo whose EXIF says where it was taken
    alice, bob = await register(app.http), await register(app.http)
    photo = jpeg_with_gps(64, 48)
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(0x8825)
    # when alice uploads it and sends it to bob with a caption
    upload_id = await upload(alice, photo, kind="IMAGE", content_type="image/jpeg", name="me.jpg")
    sent = await send_media(alice, [upload_id], to=bob, caption="guess where")
    # then it is an IMAGE message carrying one attachment, measured by the server
    assert (sent["kind"], sent["body"]) == ("IMAGE", "guess where")
    (attachment,) = sent["attachments"]
    # the attachment is the upload, shown as what a message carries (an id of its own kind)
    assert attachment["id"] == global_id(Kind.ATTACHMENT, pk(upload_id))
    assert (attachment["kind"], attachment["contentType"]) == ("IMAGE", "image/jpeg")
    assert (attachment["width"], attachment["height"]) == (64, 48)
    assert attachment["fileName"] == "me.jpg"
    assert attachment["thumbnail"].startswith("data:image/jpeg;base64,")
    # and bob sees it in the history and downloads it: a JPEG of the same size, no EXIF
    (seen,) = (await _history(bob, sent["conversationId"]))[0]["attachments"]
    response = await bob.http.get(seen["url"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/jpeg")
    downloaded = Image.open(io.BytesIO(response.content))
    assert downloaded.size == (64, 48)
    assert not downloaded.getexif()
    assert seen["size"] == len(response.content)


async def test_an_executable_named_jpg_is_refused_and_deleted(
    app: RunningApp, settings: Settings
) -> None:
    # given alice declared a JPEG
    alice, bob = await register(app.http), await register(app.http)
    ticket = await create_upload(
        alice, kind="IMAGE", content_type="image/jpeg", size=len(EXECUTABLE), name="cat.jpg"
    )
    # when the bytes are a Windows executable
    response = await alice.http.put(ticket["url"], content=EXECUTABLE)
    # then the upload is refused by what the bytes are, and nothing of it is kept
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["extensions"]["code"], error["extensions"]["reason"]) == (
        "BAD_USER_INPUT",
        "EXECUTABLE",
    )
    assert await _stored_keys(app) == [] and _media_files(settings) == []
    # and it cannot be sent
    codes = await _codes(send_media(alice, [ticket["id"]], to=bob))
    assert codes == ["NOT_FOUND"]


async def test_bytes_that_are_not_the_declared_type_are_refused(app: RunningApp) -> None:
    alice = await register(app.http)
    ticket = await create_upload(
        alice, kind="FILE", content_type="application/pdf", size=len(png()), name="a.pdf"
    )
    response = await alice.http.put(ticket["url"], content=png())
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["reason"] == "TYPE_MISMATCH"


async def test_more_bytes_than_declared_are_cut_off(app: RunningApp, settings: Settings) -> None:
    # given an upload declared at 100 bytes
    alice = await register(app.http)
    ticket = await create_upload(alice, kind="FILE", content_type="text/plain", size=100)
    assert ticket["maxBytes"] == 100
    # when 10,000 bytes are sent
    response = await alice.http.put(ticket["url"], content=b"x" * 10_000)
    # then the endpoint refuses them with 413 and keeps nothing
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["reason"] == "TOO_LARGE"
    assert _media_files(settings) == []


@pytest.mark.parametrize(
    ("kind", "content_type", "size"),
    [
        ("IMAGE", "application/x-msdownload", 100),  # not an accepted type
        ("IMAGE", "application/pdf", 100),  # accepted, but not an image
        ("FILE", "application/pdf", 50 * 1024 * 1024 + 1),  # over 50 MB
        ("FILE", "application/pdf", 0),
    ],
)
async def test_undeclarable_uploads_are_refused_up_front(
    app: RunningApp, kind: str, content_type: str, size: int
) -> None:
    alice = await register(app.http)
    codes = await _codes(create_upload(alice, kind=kind, content_type=content_type, size=size))
    assert codes == ["BAD_USER_INPUT"]


async def test_a_forged_or_reused_upload_url_is_refused(app: RunningApp) -> None:
    alice = await register(app.http)
    ticket = await create_upload(alice, kind="FILE", content_type="text/plain", size=5)
    forged = ticket["url"][:-3] + ("aaa" if not ticket["url"].endswith("aaa") else "bbb")
    assert (await alice.http.put(forged, content=b"hello")).status_code == 404
    assert (await alice.http.put(ticket["url"], content=b"hello")).status_code == 200
    assert (await alice.http.put(ticket["url"], content=b"hello")).status_code == 409


async def test_a_voice_note_has_its_duration_and_a_100_bar_waveform(app: RunningApp) -> None:
    # given a 1.5 s WAV voice note that swells
    alice, bob = await register(app.http), await register(app.http)
    upload_id = await upload(alice, wav(1.5), kind="AUDIO", content_type="audio/wav")
    # when it is sent
    sent = await send_media(alice, [upload_id], to=bob)
    # then the server measured it: 1.5 s, 100 bars from 0 to 1, quiet first and loud last
    assert sent["kind"] == "AUDIO" and sent["body"] is None
    (note,) = sent["attachments"]
    assert note["durationSeconds"] == pytest.approx(1.5)
    bars = note["waveform"]
    assert len(bars) == 100 and all(0 <= bar <= 1 for bar in bars)
    assert max(bars) == 1.0 and bars[0] < 0.05 < bars[50] < bars[99]


async def test_a_voice_note_the_server_cannot_decode_keeps_the_clients_waveform(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    webm = b"\x1a\x45\xdf\xa3" + b"\x00" * 60
    bars = [i / 99 for i in range(100)]
    # a waveform that is not 100 values from 0 to 1 is refused
    for wrong in ([0.5] * 99, [1.5] * 100):
        codes = await _codes(
            create_upload(alice, kind="AUDIO", content_type="audio/webm", size=64, waveform=wrong)
        )
        assert codes == ["BAD_USER_INPUT"]
    upload_id = await upload(
        alice, webm, kind="AUDIO", content_type="audio/webm", duration=3.25, waveform=bars
    )
    (note,) = (await send_media(alice, [upload_id], to=bob))["attachments"]
    assert (note["durationSeconds"], note["waveform"]) == (3.25, bars)


async def test_playing_a_voice_note_is_recorded_and_replayed_as_an_event(
    server: RunningApp,
) -> None:
    # given alice sent bob a voice note
    alice, bob = await register(server.http), await register(server.http)
    upload_id = await upload(alice, wav(0.5), kind="AUDIO", content_type="audio/wav")
    sent = await send_media(alice, [upload_id], to=bob)
    # when bob plays it (twice), and alice plays her own
    played = (await bob.call(MARK_PLAYED, m=sent["id"]))["markPlayed"]
    await bob.call(MARK_PLAYED, m=sent["id"])
    await alice.call(MARK_PLAYED, m=sent["id"])
    # then it was played by bob, once
    assert played["playedBy"] == [{"id": bob.id}]
    # and alice's stream replays it as one durable event after the message
    document = """
    subscription Events($id: ID!) {
      conversationEvents(conversationId: $id, afterSeq: 0) {
        __typename cursor
        ... on MessagePlayedEvent { user { id } message { id playedBy { id } } }
      }
    }
    """
    assert server.ws_url is not None
    async with subscribe(
        server.ws_url, alice.token, document, {"id": sent["conversationId"]}
    ) as feed:
        event = await feed.next_of("MessagePlayedEvent")
    assert event["cursor"] is not None
    assert event["user"] == {"id": bob.id}
    assert event["message"] == {"id": sent["id"], "playedBy": [{"id": bob.id}]}


async def test_only_voice_notes_are_played(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    text = await alice.send("not a voice note", to=bob)
    assert await _codes(bob.call(MARK_PLAYED, m=text["id"])) == ["BAD_USER_INPUT"]


async def test_recording_a_voice_note_rides_the_typing_channel(server: RunningApp) -> None:
    alice, bob = await register(server.http), await register(server.http)
    first = await alice.send("hello", to=bob)
    document = """
    subscription Events($id: ID!) {
      conversationEvents(conversationId: $id, afterSeq: 0) {
        __typename
        ... on MessagePostedEvent { message { body } }
        ... on TypingEvent { user { id } typing activity }
      }
    }
    """
    assert server.ws_url is not None
    async with subscribe(
        server.ws_url, bob.token, document, {"id": first["conversationId"]}
    ) as feed:
        await feed.next_of("MessagePostedEvent")
        # live once the replay is over: a message sent now arrives
        await alice.send("probe", conversation_id=first["conversationId"])
        await feed.next_of("MessagePostedEvent")
        await alice.call(
            """mutation ($c: ID!) {
              setTyping(conversationId: $c, typing: true, activity: RECORDING_VOICE)
            }""",
            c=first["conversationId"],
        )
        event = await feed.next_of("TypingEvent")
    assert event == {
        "__typename": "TypingEvent",
        "user": {"id": alice.id},
        "typing": True,
        "activity": "RECORDING_VOICE",
    }


async def test_downloads_are_for_participants_through_signed_urls(app: RunningApp) -> None:
    # given alice sent bob a file
    alice, bob, mallory = [await register(app.http) for _ in range(3)]
    upload_id = await upload(
        alice, b"minutes of the meeting\n", kind="FILE", content_type="text/plain"
    )
    sent = await send_media(alice, [upload_id], to=bob)
    (attachment,) = sent["attachments"]
    # then a stranger cannot reach the message, hence no URL
    assert await _codes(mallory.call(MESSAGES, id=sent["conversationId"])) == ["NOT_FOUND"]
    # and the URL is signed: changed in any way, it answers nothing
    url = attachment["url"]
    token, name = url.split("/")[-2:]
    other_id = str(int(token.split(".")[0]) + 1)
    tampered = url.replace(token, ".".join([other_id, *token.split(".")[1:]]))
    assert (await mallory.http.get(tampered)).status_code == 404
    response = await bob.http.get(url)
    assert response.status_code == 200 and response.content == b"minutes of the meeting\n"
    assert response.headers["content-disposition"].startswith("attachment")
    assert name == "file"


async def test_unsending_a_message_deletes_its_files(app: RunningApp, settings: Settings) -> None:
    # given a photo alice sent bob
    alice, bob = await register(app.http), await register(app.http)
    upload_id = await upload(alice, png(), kind="IMAGE", content_type="image/png")
    sent = await send_media(alice, [upload_id], to=bob)
    url = sent["attachments"][0]["url"]
    assert len(_media_files(settings)) == 1
    # when she unsends it
    await alice.call(UNSEND, m=sent["id"])
    # then the file is gone from storage, its URL answers nothing, the tombstone has none
    assert _media_files(settings) == [] and await _stored_keys(app) == []
    assert (await bob.http.get(url)).status_code == 404
    (tombstone,) = await _history(bob, sent["conversationId"])
    assert tombstone["deletedAt"] is not None and tombstone["attachments"] == []


async def test_an_upload_is_used_once_and_only_by_its_owner(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    upload_id = await upload(alice, png(), kind="IMAGE", content_type="image/png")
    # bob cannot send alice's upload
    assert await _codes(send_media(bob, [upload_id], to=alice)) == ["NOT_FOUND"]
    sent = await send_media(alice, [upload_id], to=bob, client_id="once")
    # a retry of the same send returns the same message
    again = await send_media(alice, [upload_id], to=bob, client_id="once")
    assert again["id"] == sent["id"]
    # another send with it finds it used
    assert await _codes(send_media(alice, [upload_id], to=bob, client_id="twice")) == ["NOT_FOUND"]


async def test_an_upload_without_its_bytes_cannot_be_sent(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    ticket = await create_upload(alice, kind="IMAGE", content_type="image/png", size=100)
    assert await _codes(send_media(alice, [ticket["id"]], to=bob)) == ["BAD_USER_INPUT"]


async def test_unused_uploads_expire_and_are_deleted(app: RunningApp, settings: Settings) -> None:
    # given an upload that was sent and one that never was
    alice, bob = await register(app.http), await register(app.http)
    used = await upload(alice, png(), kind="IMAGE", content_type="image/png")
    await send_media(alice, [used], to=bob)
    unused = await upload(alice, png(), kind="IMAGE", content_type="image/png")
    assert len(_media_files(settings)) == 2
    # when the sweeper runs after they expired
    removed = await uploads.sweep_expired(
        app.runtime, now=utcnow() + timedelta(seconds=settings.upload_ttl_seconds + 1)
    )
    # then only the unused one is gone, bytes and record, and it cannot be sent any more
    assert removed == 1 and len(_media_files(settings)) == 1
    async with app.runtime.db.reader() as session:
        remaining = list(await session.scalars(select(Attachment.id)))
    assert remaining == [pk(used)]
    assert await _codes(send_media(alice, [unused], to=bob, client_id="late")) == ["NOT_FOUND"]


async def test_the_upload_sweeper_is_supervised_and_shown_on_readyz(app: RunningApp) -> None:
    response = await app.http.get("/readyz")
    status = response.json()["taskStatus"][uploads.SWEEPER]
    assert status["running"] and status["healthy"]


async def test_uploads_are_rate_limited_per_user(settings: Settings, database: str) -> None:
    limited = settings.with_overrides(rate_limits=True, upload_limit="2 per minute")
    async with in_process_app(limited) as app:
        alice = await register(app.http)
        for _ in range(2):
            await create_upload(alice, kind="FILE", content_type="text/plain", size=10)
        codes = await _codes(create_upload(alice, kind="FILE", content_type="text/plain", size=10))
        assert codes == ["RATE_LIMITED"]


async def test_uploads_count_against_a_storage_quota(settings: Settings, database: str) -> None:
    async with in_process_app(settings.with_overrides(upload_quota_bytes=1000)) as app:
        alice = await register(app.http)
        await create_upload(alice, kind="FILE", content_type="text/plain", size=600)
        codes = await _codes(create_upload(alice, kind="FILE", content_type="text/plain", size=600))
        assert codes == ["QUOTA_EXCEEDED"]


async def test_upload_urls_follow_the_public_url(settings: Settings, database: str) -> None:
    public = settings.with_overrides(public_url="https://chat.example.com")
    async with in_process_app(public) as app:
        alice = await register(app.http)
        ticket = await create_upload(alice, kind="FILE", content_type="text/plain", size=5)
        assert ticket["url"].startswith("https://chat.example.com/media/uploads/")
        # the same endpoint, reached through the proxy's address
        path = httpx.URL(ticket["url"]).path
        assert (await alice.http.put(path, content=b"hello")).status_code == 200
