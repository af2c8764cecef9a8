"""Fetching a web page for a link preview without becoming a way into the server's network.

Server-side request forgery is the risk: a message naming `http://169.254.169.254/` (cloud
metadata), `http://10.0.0.1/admin` or a hostname that resolves to one of those must not make
chatr fetch it. So, for the URL and again for every redirect (at most `MAX_REDIRECTS`):

- only `http` and `https`, on their usual ports or any port above 1023;
- the hostname is resolved here, and every address it resolves to must be public: private,
  loopback, link-local, multicast, reserved, unspecified and shared (CGNAT) ranges are
  refused, IPv4-mapped IPv6 addresses as their IPv4 address;
- the connection goes to the address that was checked (the Host header and TLS SNI keep the
  name), so a second DNS answer cannot swap in another one (DNS rebinding);
- the whole fetch has `TIMEOUT_SECONDS`, and at most `MAX_BYTES` of body are read.

`allow_loopback` lets tests fetch from a server of their own on 127.0.0.1 (the settings field
`link_preview_allow_loopback`, which no environment variable sets); everything else stays
refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

TIMEOUT_SECONDS = 10.0
MAX_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
USER_AGENT = "chatr-link-preview/1.0 (+https://github.com/chatr)"
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """The URL (or a redirect) leads somewhere chatr does not fetch from."""


class FetchFailed(Exception):
    """The page could not be fetched (network, status, size, time)."""


@dataclass(frozen=True)
class Page:
    url: str
    content_type: str
    body: bytes


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return not (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE)
        or not address.is_global
    )


async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` resolves to (a literal address as itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise FetchFailed(f"cannot resolve {host}") from error
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def checked_address(
    url: str, *, allow_loopback: bool
) -> tuple[str, int, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """(host, port, the address to connect to) of an allowed URL; Refused otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {url!r}")
    if parts.username or parts.password:
        raise Refused("URLs with credentials are not fetched")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise Refused(f"bad port in {url!r}") from error
    if port not in (80, 443) and port < 1024:
        raise Refused(f"port {port} is not fetched")
    host = parts.hostname
    addresses = await resolve(host, port)
    if not addresses or not all(_public(address, allow_loopback) for address in addresses):
        raise Refused(f"{host} is not a public address")
    return host, port, addresses[0]


def _pinned(url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    return urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))


async def fetch(url: str, *, allow_loopback: bool = False, accept: str = "text/html") -> Page:
    """The page at `url` (following at most MAX_REDIRECTS redirects, each re-checked)."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            return await _fetch(url, allow_loopback=allow_loopback, accept=accept)
    except TimeoutError as error:
        raise FetchFailed(f"{url} took longer than {TIMEOUT_SECONDS} s") from error


async def _fetch(url: str, *, allow_loopback: bool, accept: str) -> Page:
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=TIMEOUT_SECONDS, verify=True, trust_env=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            host, port, address = await checked_address(url, allow_loopback=allow_loopback)
            default_port = 443 if url.startswith("https") else 80
            request = client.build_request(
                "GET",
                _pinned(url, address, port),
                headers={
                    "Host": host if port == default_port else f"{host}:{port}",
                    "User-Agent": USER_AGENT,
                    "Accept": accept,
                },
                extensions={"sni_hostname": host},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as error:
                raise FetchFailed(f"{url}: {error!r}") from error
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(f"{url}: a redirect without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"{url}: HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise FetchFailed(f"{url}: more than {MAX_BYTES} bytes")
                return Page(url, response.headers.get("content-type", ""), bytes(body))
            finally:
                await response.aclose()
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")


# -- the work queue of one instance -----------------------------------------------------------

#: Messages waiting for their preview on one instance; past it, new ones get none.
QUEUE_SIZE = 1000
CACHE_SIZE = 1000
CACHE_SECONDS = 3600.0


@dataclass(frozen=True)
class PreviewJob:
    message_id: int
    conversation_id: int
    url: str


class PreviewQueue:
    """One instance's queue of messages awaiting a preview, and its cache of previews by URL
    (a failure cached too, as None), bounded in size and age."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[PreviewJob] = asyncio.Queue(QUEUE_SIZE)
        self._cache: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()

    def cached(self, url: str) -> tuple[bool, dict[str, Any] | None]:
        found = self._cache.get(url)
        if found is None or found[0] < time.monotonic():
            return False, None
        self._cache.move_to_end(url)
        return True, found[1]

    def remember(self, url: str, preview: dict[str, Any] | None) -> None:
        self._cache[url] = (time.monotonic() + CACHE_SECONDS, preview)
        self._cache.move_to_end(url)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
