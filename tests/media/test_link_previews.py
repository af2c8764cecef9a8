"""Link previews: fetched by the server off the request path, within limits, never from an
address inside the server's network (SSRF), and delivered as a durable event.

The pages come from a small HTTP server of the test's own on a free loopback port; loopback is
reachable only through the explicit test setting `link_preview_allow_loopback`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from chatr.infra import link_fetch
from chatr.infra.link_fetch import PreviewJob
from chatr.models import Event, EventType
from chatr.services import link_previews
from chatr.settings import Settings
from tests.media.helpers import UNSEND
from tests.support.api import Account, register
from tests.support.ids import pk
from tests.support.servers import RunningApp, in_process_app

ARTICLE = """<!doctype html><html><head>
<title>Fallback title</title>
<meta property="og:title" content="The Article">
<meta property="og:description" content="What it is   about.">
<meta property="og:image" content="/pictures/cover.png">
<meta property="og:site_name" content="Test Pages">
<link rel="alternate" type="application/json+oembed" href="/oembed">
</head><body><p>text</p></body></html>"""
OEMBED = {"title": "The Article (oEmbed)", "author_name": "Ada", "provider_name": "Test Pages"}
METADATA = "http://169.254.169.254/latest/meta-data/"


@dataclass
class Pages:
    """A loopback HTTP server of test pages, counting the requests for each path."""

    port: int
    hits: Counter[str] = field(default_factory=Counter)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _response(status: str, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode() + body


def _page(path: str) -> bytes:
    if path == "/article":
        return _response("200 OK", "text/html; charset=utf-8", ARTICLE.encode())
    if path == "/oembed":
        return _response("200 OK", "application/json", json.dumps(OEMBED).encode())
    if path == "/to-article":
        return _response("302 Found", "text/plain", b"", "Location: /article\r\n")
    if path == "/to-metadata":
        return _response("302 Found", "text/plain", b"", f"Location: {METADATA}\r\n")
    if path.startswith("/loop"):
        return _response("302 Found", "text/plain", b"", f"Location: {path}x\r\n")
    if path == "/big":
        return _response("200 OK", "text/html", b"<html>" + b"a" * (2 * 1024 * 1024))
    return _response("404 Not Found", "text/plain", b"")


@pytest.fixture
async def pages() -> AsyncIterator[Pages]:
    found = Pages(0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            found.hits[path] += 1
            writer.write(_page(path))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "ftp://example.com/file",
        "http://127.0.0.1:22/",
    ],
)
async def test_addresses_inside_the_network_are_refused(url: str) -> None:
    with pytest.raises(link_fetch.Refused):
        await link_fetch.fetch(url)


async def test_a_hostname_resolving_to_loopback_is_refused(pages: Pages) -> None:
    # localhost resolves to 127.0.0.1 (and ::1): refused after resolution, and nothing was asked
    with pytest.raises(link_fetch.Refused):
        await link_fetch.fetch(pages.url("/article", host="localhost"))
    assert pages.hits == Counter()


async def test_a_redirect_into_the_network_is_refused(pages: Pages) -> None:
    # loopback allowed (the test setting), the redirect to the metadata address still is not
    with pytest.raises(link_fetch.Refused):
        await link_fetch.fetch(pages.url("/to-metadata"), allow_loopback=True)
    assert pages.hits == Counter({"/to-metadata": 1})


async def test_loopback_is_refused_without_the_test_setting(pages: Pages) -> None:
    with pytest.raises(link_fetch.Refused):
        await link_fetch.fetch(pages.url("/article"))
    assert pages.hits == Counter()


async def test_at_most_three_redirects_and_one_megabyte(pages: Pages) -> None:
    with pytest.raises(link_fetch.FetchFailed):
        await link_fetch.fetch(pages.url("/loop"), allow_loopback=True)
    assert sum(pages.hits.values()) == 4  # the page and three redirects
    with pytest.raises(link_fetch.FetchFailed):
        await link_fetch.fetch(pages.url("/big"), allow_loopback=True)


async def test_a_page_is_described_by_its_tags_and_its_oembed(pages: Pages) -> None:
    preview = await link_previews.build(pages.url("/to-article"), allow_loopback=True)
    assert preview == {
        "url": pages.url("/article"),
        "title": "The Article (oEmbed)",
        "description": "What it is about.",
        "imageUrl": pages.url("/pictures/cover.png"),
        "siteName": "Test Pages",
        "authorName": "Ada",
    }


def test_the_first_url_of_a_text_is_previewed() -> None:
    text = "see (https://example.com/a?b=1). and http://other.example/"
    assert link_previews.first_url(text) == "https://example.com/a?b=1"
    assert link_previews.first_url("no link here") is None


LINK_PREVIEW = """
query History($id: ID!) {
  conversation(id: $id) {
    messages(first: 10) {
      edges { node { id linkPreview { url title description imageUrl siteName authorName } } }
    }
  }
}
"""


async def _preview_of(account: Account, conversation_id: str) -> dict[str, Any] | None:
    found = await account.call(LINK_PREVIEW, id=conversation_id)
    node = found["conversation"]["messages"]["edges"][0]["node"]
    preview: dict[str, Any] | None = node["linkPreview"]
    return preview


async def test_a_sent_link_gets_its_preview_as_a_durable_event(
    settings: Settings, database: str, pages: Pages
) -> None:
    previewing = settings.with_overrides(link_previews=True, link_preview_allow_loopback=True)
    async with in_process_app(previewing) as app:
        alice, bob = await register(app.http), await register(app.http)
        # when alice sends a link, the answer comes before any preview
        sent = await alice.send(f"read {pages.url('/article')} !", to=bob)
        # then the preview arrives, fetched by the server, and bob sees it
        async with asyncio.timeout(20):
            while (preview := await _preview_of(bob, sent["conversationId"])) is None:
                await asyncio.sleep(0.05)
        assert preview["title"] == "The Article (oEmbed)"
        assert preview["imageUrl"] == pages.url("/pictures/cover.png")
        # as a durable MESSAGE_UPDATED event of the message
        async with app.runtime.db.reader() as session:
            updated = list(
                await session.scalars(
                    select(Event.message_id).where(Event.type == EventType.MESSAGE_UPDATED)
                )
            )
        assert updated == [pk(sent["id"])]
        # and the same link again is not fetched again (cached by URL)
        again = await alice.send(f"again {pages.url('/article')}", to=bob)
        async with asyncio.timeout(20):
            while await _preview_of(bob, again["conversationId"]) is None:
                await asyncio.sleep(0.05)
        assert pages.hits["/article"] == 1


async def test_an_unsent_message_gets_no_preview(app: RunningApp) -> None:
    alice, bob = await register(app.http), await register(app.http)
    sent = await alice.send("see https://example.com/page", to=bob)
    await alice.call(UNSEND, m=sent["id"])
    job = PreviewJob(pk(sent["id"]), pk(sent["conversationId"]), "https://example.com/page")
    assert not await link_previews.attach(app.runtime, job, {"url": job.url, "title": "x"})
    assert await _preview_of(bob, sent["conversationId"]) is None
