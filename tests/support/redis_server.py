"""A private, throw-away `redis-server` for fault tests.

Fault tests kill, pause and restart Redis; they must never do that to the shared server on
6379. `RedisServer` runs its own process on a free loopback port, with persistence off and its
files in a temporary directory, and always terminates it (on `stop()`, on leaving the `with`
block, and at interpreter exit as a last resort).

It is plain `subprocess`, usable from sync code and from async tests alike (from async code,
`await asyncio.to_thread(server.restart)` keeps the event loop responsive meanwhile)::

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        server.kill()      # SIGKILL: connections drop at once, nothing is saved
        server.restart()   # same port, empty dataset
        server.pause()     # SIGSTOP: connections stay open, nothing answers
        server.resume()    # SIGCONT
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

SHARED_REDIS_PORT = 6379
_running: set[subprocess.Popen[bytes]] = set()


def _free_port() -> int:
    """A port the kernel just handed out; redis-server binds it a moment later."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port != SHARED_REDIS_PORT:
            return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@atexit.register
def _terminate_leftovers() -> None:
    """Last resort if a test process dies without cleaning up its servers."""
    for process in list(_running):
        process.kill()
        process.wait()


class RedisServer:
    """A private redis-server on 127.0.0.1; the port is free-picked unless given (never 6379)."""

    def __init__(self, port: int | None = None, *, startup_timeout: float = 10.0) -> None:
        if port == SHARED_REDIS_PORT:
            raise ValueError("port 6379 is the shared Redis; fault tests must use their own")
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH")
        self._fixed_port = port is not None
        self.port = port if port is not None else _free_port()
        self._startup_timeout = startup_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="chatr-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> RedisServer:
        """Start the server and return once it answers PING."""
        if self.running:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        for _attempt in range(3):
            if self._launch():
                return self
            if self._fixed_port:
                break
            self.port = _free_port()  # someone took the port between probe and bind
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self._log_tail()}")

    def _launch(self) -> bool:
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self._dir),
            "--logfile", str(self._dir / "redis.log"),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._process = process
        _running.add(process)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._reap()
                return False
            if _answers_ping(self.port):
                return True
            time.sleep(0.01)
        self._reap(kill=True)
        return False

    def kill(self) -> None:
        """SIGKILL, as a crash would: clients see their connections drop at once."""
        self._reap(kill=True)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing is answered (a hung server)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Kill if running, then start again on the same port (the dataset is empty)."""
        self._reap(kill=True)
        self._fixed_port = True  # clients hold this URL
        return self.start()

    def stop(self) -> None:
        """Terminate the process (if any) and remove its directory. Safe to call twice."""
        self._reap()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _reap(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _running.discard(process)

    def _log_tail(self) -> str:
        try:
            return "\n".join((self._dir / "redis.log").read_text().splitlines()[-20:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} {state}>"
