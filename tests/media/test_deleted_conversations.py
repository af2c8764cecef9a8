"""A conversation deleted for everyone takes its files with it: every attachment's bytes and a
group's avatar and cover, as unsending one message removes that message's files."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from chatr.models import Attachment
from chatr.settings import Settings
from tests.groups.helpers import DELETE_GROUP, group_with
from tests.media.helpers import create_upload, jpeg_with_gps, png, send_media, upload
from tests.support.api import Account, register
from tests.support.servers import RunningApp

DELETE_CONVERSATION = (
    "mutation D($c: ID!) { deleteConversation(conversationId: $c) { conversationId } }"
)
SET_GROUP_PICTURE = """
mutation Set($c: ID!, $p: UploadPurpose!, $u: ID) {
  setGroupPicture(conversationId: $c, purpose: $p, uploadId: $u) { id avatarUrl coverUrl }
}
"""


def _files(settings: Settings) -> list[Path]:
    assert settings.media_dir is not None
    return sorted(path for path in settings.media_dir.rglob("*") if path.is_file())


async def _attachment_rows(app: RunningApp) -> int:
    async with app.runtime.db.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(Attachment)) or 0)


async def _photo(account: Account, size: tuple[int, int]) -> str:
    return await upload(account, png(*size), kind="IMAGE", content_type="image/png")


async def test_deleting_a_dm_for_everyone_removes_its_attachments_files(
    app: RunningApp, settings: Settings
) -> None:
    # given a DM holding two photos, one from each side
    alice, bob = await register(app.http), await register(app.http)
    sent = await send_media(alice, [await _photo(alice, (10, 10))], to=bob, client_id="a")
    conversation_id = sent["conversationId"]
    await send_media(
        bob, [await _photo(bob, (20, 20))], conversation_id=conversation_id, client_id="b"
    )
    assert len(_files(settings)) == 2
    # when bob deletes it for both
    deleted = (await bob.call(DELETE_CONVERSATION, c=conversation_id))["deleteConversation"]
    assert deleted == {"conversationId": conversation_id}
    # then neither the bytes nor their records remain
    assert _files(settings) == []
    assert await _attachment_rows(app) == 0


async def test_deleting_a_group_removes_its_attachments_and_its_pictures(
    app: RunningApp, settings: Settings
) -> None:
    # given a group with a photo message, an avatar and a cover
    alice, bob = await register(app.http), await register(app.http)
    group_id = await group_with(alice, members=[bob])
    await send_media(bob, [await _photo(bob, (30, 30))], conversation_id=group_id)
    for purpose in ("AVATAR", "COVER"):
        data = jpeg_with_gps(300, 200)
        ticket = await create_upload(
            alice, kind="IMAGE", content_type="image/jpeg", size=len(data), purpose=purpose
        )
        assert (await alice.http.put(ticket["url"], content=data)).status_code == 200
        await alice.call(SET_GROUP_PICTURE, c=group_id, p=purpose, u=ticket["id"])
    assert len(_files(settings)) == 1 + 3 + 2  # the photo, three avatar and two cover sizes
    # when its owner deletes it
    await alice.call(DELETE_GROUP, c=group_id)
    # then every file and upload record of it is gone
    assert _files(settings) == []
    assert await _attachment_rows(app) == 0
