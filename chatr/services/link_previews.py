"""Link previews: the first URL of a text message, fetched by the server off the request path.

`schedule` (called once a text message is stored) only queues the message; the instance's
supervised `link-previews` worker (`work_forever`) fetches the page through
chatr.infra.link_fetch (SSRF rules, 10 s, 1 MB, at most 3 redirects each re-checked), reads
its title, description, image and site name (Open Graph and Twitter tags, else `<title>` and
the description meta tag; a page's oEmbed JSON where it offers one), and stores them on the
message, in one transaction with a durable MESSAGE_UPDATED event, so the preview reaches
every member live or by replay. Previews are cached by URL per instance
(`link_fetch.PreviewQueue`), failures included, so a link sent to many conversations is
fetched once.
A message unsent or edited (the URL gone) before its preview arrives keeps none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from sqlalchemy import select

from chatr.infra import event_log, link_fetch
from chatr.models import EventType, Message, MessageKind
from chatr.pubsub import channels, envelopes
from chatr.runtime import Runtime

log = logging.getLogger("chatr.link_previews")

#: The worker's name under the instance's supervisor (and on /readyz).
WORKER = "link-previews"
MAX_TEXT = 300
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def first_url(body: str | None) -> str | None:
    """The first http(s) URL in a text, without the punctuation that ends a sentence."""
    if not body:
        return None
    found = _URL.search(body)
    if found is None:
        return None
    url = found.group(0).rstrip(_TRAILING)
    return url if len(url) <= 2048 else None


class _Metadata(HTMLParser):
    """The tags a preview is made of, from the document's head (stops at `<body>`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.oembed: str | None = None
        self._in_title = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag == "body":
            self.done = True
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            if key and "content" in values:
                self.meta.setdefault(key, values["content"])
        elif tag == "link":
            kind = values.get("type", "").lower()
            if "alternate" in values.get("rel", "").lower() and kind == "application/json+oembed":
                self.oembed = self.oembed or values.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and not self.done:
            self.title += data


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text[:MAX_TEXT] or None


def _absolute(base: str, value: str | None) -> str | None:
    if not value:
        return None
    url = urljoin(base, value.strip())
    return url if urlsplit(url).scheme in ("http", "https") and len(url) <= 2048 else None


def parse(page: link_fetch.Page) -> tuple[dict[str, Any], str | None]:
    """The preview a page's head describes, and its oEmbed URL if it offers one."""
    charset = "utf-8"
    found = re.search(r"charset=([\w-]+)", page.content_type)
    if found:
        charset = found.group(1)
    try:
        text = page.body.decode(charset, errors="replace")
    except LookupError:
        text = page.body.decode("utf-8", errors="replace")
    parser = _Metadata()
    parser.feed(text)
    meta = parser.meta

    def first(*names: str) -> str | None:
        for name in names:
            if meta.get(name):
                return meta[name]
        return None

    preview = {
        "url": page.url,
        "title": _clean(first("og:title", "twitter:title") or parser.title),
        "description": _clean(first("og:description", "twitter:description", "description")),
        "imageUrl": _absolute(page.url, first("og:image", "og:image:url", "twitter:image")),
        "siteName": _clean(first("og:site_name")) or urlsplit(page.url).hostname,
    }
    return preview, _absolute(page.url, parser.oembed)


def _with_oembed(preview: dict[str, Any], page: link_fetch.Page) -> dict[str, Any]:
    try:
        data = json.loads(page.body)
    except ValueError:
        return preview
    if not isinstance(data, dict):
        return preview
    merged = dict(preview)
    merged["title"] = _clean(data.get("title")) or preview["title"]
    merged["siteName"] = _clean(data.get("provider_name")) or preview["siteName"]
    thumbnail = data.get("thumbnail_url")
    merged["imageUrl"] = (
        _absolute(page.url, thumbnail) if isinstance(thumbnail, str) else None
    ) or preview["imageUrl"]
    if isinstance(data.get("author_name"), str):
        merged["authorName"] = _clean(data["author_name"])
    return merged


async def build(url: str, *, allow_loopback: bool) -> dict[str, Any] | None:
    """The preview of `url`, or None if it cannot (or may not) be fetched."""
    try:
        page = await link_fetch.fetch(url, allow_loopback=allow_loopback)
    except (link_fetch.Refused, link_fetch.FetchFailed) as error:
        log.info("no preview for %s: %s", url, error)
        return None
    if "html" not in page.content_type.lower():
        return None
    preview, oembed = parse(page)
    if oembed is not None:
        try:
            described = await link_fetch.fetch(
                oembed, allow_loopback=allow_loopback, accept="application/json"
            )
        except (link_fetch.Refused, link_fetch.FetchFailed) as error:
            log.info("no oEmbed for %s: %s", url, error)
        else:
            preview = _with_oembed(preview, described)
    if not preview["title"] and not preview["description"] and not preview["imageUrl"]:
        return None
    return preview


def schedule(rt: Runtime, message: Message) -> None:
    """Queue a freshly sent text message for its preview (nothing if it has no URL, if
    previews are off, or if this instance's queue is full)."""
    if not rt.settings.link_previews or message.kind != MessageKind.TEXT:
        return
    url = first_url(message.body)
    if url is None:
        return
    try:
        rt.previews.queue.put_nowait(
            link_fetch.PreviewJob(message.id, message.conversation_id, url)
        )
    except asyncio.QueueFull:
        log.warning("link preview queue full: no preview for message %s", message.id)


async def work_forever(rt: Runtime) -> None:
    """The `link-previews` worker: one job at a time, each bounded by the fetch's limits."""
    while True:
        job = await rt.previews.queue.get()
        hit, preview = rt.previews.cached(job.url)
        if not hit:
            preview = await build(job.url, allow_loopback=rt.settings.link_preview_allow_loopback)
            rt.previews.remember(job.url, preview)
        if preview is not None:
            await attach(rt, job, preview)


async def attach(rt: Runtime, job: link_fetch.PreviewJob, preview: dict[str, Any]) -> bool:
    """Store the preview on its message and log MESSAGE_UPDATED (durable), unless the message
    was unsent or no longer names the URL."""
    async with rt.db.session() as session, session.begin():
        if not rt.db.is_sqlite:
            await session.execute(select(event_log.serialised(job.conversation_id)))
        message = await session.get(Message, job.message_id, populate_existing=True)
        if (
            message is None
            or message.deleted_at is not None
            or first_url(message.body) != job.url
            or message.link_preview == preview  # a retried send queued it again
        ):
            return False
        message.link_preview = preview
        await session.flush()
        position = await event_log.append(
            await session.connection(),
            type=EventType.MESSAGE_UPDATED,
            conversation_id=message.conversation_id,
            actor_id=None,
            message_id=message.id,
            seq=message.seq,
        )
        seq = message.seq
    await rt.announce(
        channels.conversation(job.conversation_id),
        envelopes.EventAnnounced(
            position, job.conversation_id, EventType.MESSAGE_UPDATED.value, seq
        ),
    )
    return True
