"""Avatars and covers of people and groups: uploaded like any file, resized to the sizes
every client shows, the old one deleted when replaced, removable, and each change a durable
event for the people who see it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from chatr.models import Attachment, Event, EventType
from chatr.settings import Settings
from tests.api.test_admin import _admin
from tests.groups.helpers import group_with
from tests.media.helpers import create_upload, jpeg_with_gps
from tests.support.api import Account, GraphQLError, register
from tests.support.ids import pk
from tests.support.servers import RunningApp

SET_PICTURE = """
mutation Set($p: UploadPurpose!, $u: ID) {
  setProfilePicture(purpose: $p, uploadId: $u) {
    id avatarUrl small: avatarUrl(size: 96) mid: avatarUrl(size: 320)
    coverUrl half: coverUrl(width: 600)
  }
}
"""
SET_GROUP_PICTURE = """
mutation Set($c: ID!, $p: UploadPurpose!, $u: ID) {
  setGroupPicture(conversationId: $c, purpose: $p, uploadId: $u) { id avatarUrl coverUrl }
}
"""
PROFILE = "query Profile($id: ID!) { user(id: $id) { avatarUrl small: avatarUrl(size: 96) } }"


async def _picture_upload(account: Account, purpose: str, data: bytes) -> str:
    ticket = await create_upload(
        account,
        kind="IMAGE",
        content_type="image/jpeg",
        size=len(data),
        name="me.jpg",
        purpose=purpose,
    )
    response = await account.http.put(ticket["url"], content=data)
    assert response.status_code == 200, response.text
    return str(ticket["id"])


async def _image(account: Account, url: str) -> Image.Image:
    response = await account.http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content))


def _files(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.media_dir.rglob("*") if path.is_file())


async def _codes(call: Any) -> list[str]:
    with pytest.raises(GraphQLError) as refused:
        await call
    return refused.value.codes


@pytest.mark.smoke
async def test_an_avatar_is_resized_to_the_promised_squares(
    app: RunningApp, settings: Settings
) -> None:
    # given alice uploads a 1000x700 photo (with GPS EXIF) for her avatar
    alice = await register(app.http)
    upload_id = await _picture_upload(alice, "AVATAR", jpeg_with_gps(1000, 700))
    # when she makes it her avatar
    me = (await alice.call(SET_PICTURE, p="AVATAR", u=upload_id))["setProfilePicture"]
    # then it comes in 400, 320 and 96 px squares, without EXIF
    for url, side in ((me["avatarUrl"], 400), (me["mid"], 320), (me["small"], 96)):
        image = await _image(alice, url)
        assert image.size == (side, side)
        assert not image.getexif()
    # and only the resized files are kept: the original is gone
    assert [path.name for path in _files(settings)] == ["320.jpg", "400.jpg", "96.jpg"]


async def test_a_cover_is_resized_to_1200x600_and_600x300(app: RunningApp) -> None:
    alice = await register(app.http)
    upload_id = await _picture_upload(alice, "COVER", jpeg_with_gps(900, 900))
    me = (await alice.call(SET_PICTURE, p="COVER", u=upload_id))["setProfilePicture"]
    assert (await _image(alice, me["coverUrl"])).size == (1200, 600)
    assert (await _image(alice, me["half"])).size == (600, 300)


async def test_a_new_avatar_deletes_the_old_one_and_removing_it_deletes_it(
    app: RunningApp, settings: Settings
) -> None:
    # given alice has an avatar
    alice = await register(app.http)
    first = await _picture_upload(alice, "AVATAR", jpeg_with_gps(500, 500))
    old = (await alice.call(SET_PICTURE, p="AVATAR", u=first))["setProfilePicture"]
    # when she sets another, the old one's files and record are gone
    second = await _picture_upload(alice, "AVATAR", jpeg_with_gps(600, 600))
    new = (await alice.call(SET_PICTURE, p="AVATAR", u=second))["setProfilePicture"]
    assert new["avatarUrl"] != old["avatarUrl"]
    assert (await alice.http.get(old["avatarUrl"])).status_code == 404
    assert len(_files(settings)) == 3
    # and when she removes it, she has none and nothing is stored
    removed = (await alice.call(SET_PICTURE, p="AVATAR", u=None))["setProfilePicture"]
    assert removed["avatarUrl"] is None
    assert _files(settings) == []
    async with app.runtime.db.reader() as session:
        assert list(await session.scalars(select(Attachment.id))) == []


async def test_an_avatar_change_is_a_durable_event_for_those_who_share_a_conversation(
    app: RunningApp,
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    await alice.send("hi", to=bob)
    upload_id = await _picture_upload(alice, "AVATAR", jpeg_with_gps(300, 300))
    await alice.call(SET_PICTURE, p="AVATAR", u=upload_id)
    async with app.runtime.db.reader() as session:
        audience = list(
            await session.scalars(
                select(Event.audience_id).where(Event.type == EventType.PROFILE_UPDATED)
            )
        )
    assert audience == [pk(bob.id)]
    seen = (await bob.call(PROFILE, id=alice.id))["user"]
    assert seen["small"].endswith("/96.jpg")


async def test_pictures_are_jpeg_png_or_webp_within_their_size(app: RunningApp) -> None:
    alice = await register(app.http)
    for content_type, size in (("image/gif", 100), ("image/jpeg", 5 * 1024 * 1024 + 1)):
        codes = await _codes(
            create_upload(
                alice, kind="IMAGE", content_type=content_type, size=size, purpose="AVATAR"
            )
        )
        assert codes == ["BAD_USER_INPUT"]
    # a cover may be up to 10 MB
    await create_upload(
        alice, kind="IMAGE", content_type="image/jpeg", size=10 * 1024 * 1024, purpose="COVER"
    )


async def test_an_upload_made_for_a_message_is_no_avatar(app: RunningApp) -> None:
    alice = await register(app.http)
    ticket = await create_upload(alice, kind="IMAGE", content_type="image/jpeg", size=100)
    assert await _codes(alice.call(SET_PICTURE, p="AVATAR", u=ticket["id"])) == ["NOT_FOUND"]


async def test_a_groups_owner_sets_its_pictures_and_a_member_may_not(
    app: RunningApp, settings: Settings
) -> None:
    alice, bob = await register(app.http), await register(app.http)
    group_id = await group_with(alice, members=[bob])
    # a plain member is refused, and his upload's files are not kept
    bobs = await _picture_upload(bob, "AVATAR", jpeg_with_gps(200, 200))
    codes = await _codes(bob.call(SET_GROUP_PICTURE, c=group_id, p="AVATAR", u=bobs))
    assert codes == ["FORBIDDEN"]
    assert _files(settings) == []
    # the owner sets the avatar and the cover
    avatar = await _picture_upload(alice, "AVATAR", jpeg_with_gps(300, 200))
    cover = await _picture_upload(alice, "COVER", jpeg_with_gps(300, 200))
    await alice.call(SET_GROUP_PICTURE, c=group_id, p="AVATAR", u=avatar)
    group = (await alice.call(SET_GROUP_PICTURE, c=group_id, p="COVER", u=cover))["setGroupPicture"]
    assert (await _image(bob, group["avatarUrl"])).size == (400, 400)
    assert (await _image(bob, group["coverUrl"])).size == (1200, 600)
    # and removes the avatar
    removed = (await alice.call(SET_GROUP_PICTURE, c=group_id, p="AVATAR"))["setGroupPicture"]
    assert removed["avatarUrl"] is None and removed["coverUrl"] == group["coverUrl"]


async def test_a_deleted_accounts_pictures_and_unsent_uploads_are_deleted_with_it(
    app: RunningApp, settings: Settings
) -> None:
    # given alice has an avatar, a cover, and an upload she never sent; bob has an avatar
    alice, bob = await register(app.http), await register(app.http)
    for purpose in ("AVATAR", "COVER"):
        upload_id = await _picture_upload(alice, purpose, jpeg_with_gps(300, 200))
        await alice.call(SET_PICTURE, p=purpose, u=upload_id)
    await _picture_upload(alice, "AVATAR", jpeg_with_gps(50, 50))
    bobs = await _picture_upload(bob, "AVATAR", jpeg_with_gps(300, 300))
    await bob.call(SET_PICTURE, p="AVATAR", u=bobs)
    kept = _files(settings)
    # when an administrator deletes alice's account
    root = await _admin(app)
    await root.call("mutation D($u: ID!) { deleteUser(userId: $u) { deletedUserId } }", u=alice.id)
    # then only bob's three avatar sizes remain, files and records
    assert len(_files(settings)) == 3 < len(kept)
    async with app.runtime.db.reader() as session:
        records = list(await session.scalars(select(Attachment.id)))
    assert len(records) == 1  # bob's avatar upload
