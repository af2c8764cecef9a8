"""A TCP proxy a fault test controls, for outages of services it must not touch (PostgreSQL).

The shared PostgreSQL on 5432 must never be stopped or paused; a test that needs the
database to go away points the app at this proxy instead and breaks the proxy:

    async with TcpProxy(upstream_port=5432) as proxy:
        url = proxy.rewrite(database_url)   # the app's database URL, via the proxy
        proxy.pause()    # unreachable: open connections are cut, new ones are refused
        proxy.freeze()   # hung: connections open and stay open, no byte passes either way
        proxy.resume()   # healthy again (on the same port)

It runs in the test's event loop; `aclose()` (or leaving the `async with`) stops everything it
started.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

CHUNK = 64 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream address, until told otherwise."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        #: Set while bytes may pass; cleared by `freeze()`.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        #: One task per proxied connection (asyncio's handler task), cancelled by `aclose()`.
        self._connections: set[asyncio.Task[object]] = set()

    @property
    def state(self) -> str:
        if self._server is None:
            return "paused"
        return "flowing" if self._flowing.is_set() else "frozen"

    def rewrite(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> TcpProxy:
        await self._listen()
        return self

    def pause(self) -> None:
        """Unreachable: cut every open connection and refuse new ones (ECONNREFUSED)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._cut_all()

    def freeze(self) -> None:
        """Hung: accept connections and keep them open, but pass no byte either way."""
        self._flowing.clear()

    async def resume(self) -> None:
        """Healthy again: listen (on the same port) and pass bytes."""
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def aclose(self) -> None:
        self.pause()
        self._flowing.set()  # frozen pipes wake up and find their connection cut
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # 0 the first time: a free port
        self.port = listener.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=listener)

    def _cut_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()  # RST, as a dead host's kernel (or a firewall) would
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._connections.add(me)
        self._writers.add(client_w)
        writers = [client_w]
        pipes: list[asyncio.Task[None]] = []
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
            writers.append(upstream_w)
            self._writers.add(upstream_w)
            pipes = [
                asyncio.create_task(self._pipe(client_r, upstream_w)),
                asyncio.create_task(self._pipe(upstream_r, client_w)),
            ]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass  # upstream refused, or the proxy is closing: the connection just ends
        finally:
            for task in pipes:
                task.cancel()
            for task in pipes:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for writer in writers:
                writer.transport.abort()
                self._writers.discard(writer)
            self._connections.discard(me)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                await self._flowing.wait()
                chunk = await reader.read(CHUNK)
                if not chunk:
                    return
                # Frozen while this chunk was read: hold it until the proxy resumes.
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
