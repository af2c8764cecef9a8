"""The one way chatr runs a long-lived background task: supervised, visible, never silent.

Why: a task that dies on an unexpected exception takes a whole function of the server with it
(live delivery, mail, announcement retries) while the process keeps answering as if healthy.
Every long-lived task therefore runs under a `Supervisor`, which

- logs every failure once, with its traceback;
- restarts the task with capped exponential backoff (or, for `restart=False`, runs its
  `on_failure` hook, e.g. closing the socket a failed watcher was guarding);
- reports each task's state, which `/readyz` shows: a task that is waiting to be restarted,
  or that said it is degraded (`SupervisedTask.degraded`), makes the instance not ready.

A task that returns while the supervisor still runs it is treated as a failure too: nothing
long-lived is supposed to end on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("chatr.supervision")

#: What a supervised task runs; whatever it returns is ignored.
Run = Callable[[], Awaitable[object]]
OnFailure = Callable[[BaseException], Awaitable[None]]


class TaskEnded(Exception):
    """A supervised task returned although it is meant to run until stopped."""


@dataclass
class SupervisedTask:
    """One task's record; `status()` is what `/readyz` shows of it."""

    name: str
    restart: bool
    #: Whether the instance is unready while this task is unhealthy.
    critical: bool
    running: bool = False
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    #: Set by the task itself when it runs but cannot do its work (database down, say).
    degraded_reason: str | None = None
    #: A restart=False task that failed and will not run again.
    failed: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def healthy(self) -> bool:
        if self.failed or self.degraded_reason is not None:
            return False
        # A one-shot task (restart=False) that finished its job is fine; a restartable one
        # must be running (not waiting out a backoff).
        return self.running or not self.restart

    def degraded(self, reason: str) -> None:
        """The task runs but cannot do its job right now; `/readyz` says so until `recovered`."""
        if self.degraded_reason is None:
            log.warning("%s degraded: %s", self.name, reason)
        self.degraded_reason = reason

    def recovered(self) -> None:
        if self.degraded_reason is not None:
            log.info("%s recovered", self.name)
        self.degraded_reason = None

    def status(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "running": self.running,
            "restarts": self.restarts,
            "failures": self.failures,
            "lastError": self.last_error,
            "degraded": self.degraded_reason,
        }


class Supervisor:
    """Owns a set of named background tasks; `stop()` cancels them all."""

    def __init__(self, *, initial_backoff: float = 0.05, max_backoff: float = 5.0) -> None:
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._tasks: dict[str, SupervisedTask] = {}
        self._stopping = False

    def spawn(
        self,
        name: str,
        run: Run,
        *,
        restart: bool = True,
        critical: bool = True,
        on_failure: OnFailure | None = None,
    ) -> SupervisedTask:
        """Start `run()` under supervision; `name` must be unique within this supervisor.

        `restart=True`: a failure is logged and `run` is called again after a backoff (reset
        after it ran for a while without failing). `restart=False`: a failure is logged, the
        task is marked failed and `on_failure(error)` runs (itself guarded).
        """
        if name in self._tasks and self._tasks[name].task is not None:
            raise ValueError(f"a task named {name!r} is already supervised")
        record = SupervisedTask(name=name, restart=restart, critical=critical)
        self._tasks[name] = record
        record.task = asyncio.create_task(self._supervise(record, run, on_failure), name=name)
        return record

    def get(self, name: str) -> SupervisedTask | None:
        return self._tasks.get(name)

    @property
    def healthy(self) -> bool:
        return all(record.healthy for record in self._tasks.values() if record.critical)

    def status(self) -> dict[str, dict[str, object]]:
        return {name: record.status() for name, record in self._tasks.items()}

    async def stop(self, *, grace: float = 5.0) -> None:
        """Cancel every task and wait (bounded) for them to finish; never raises."""
        self._stopping = True
        tasks = [record.task for record in self._tasks.values() if record.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                log.error("%s did not stop within %.1f s", task.get_name(), grace)

    async def _supervise(
        self, record: SupervisedTask, run: Run, on_failure: OnFailure | None
    ) -> None:
        delay = self._initial_backoff
        while not self._stopping:
            record.running = True
            started = time.monotonic()
            try:
                await run()
                if self._stopping or not record.restart:
                    return
                raise TaskEnded(f"{record.name} returned unexpectedly")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                record.running = False
                record.failures += 1
                record.last_error = f"{type(error).__name__}: {error}"
                if not record.restart:
                    record.failed = True
                    log.exception("%s failed", record.name)
                    if on_failure is not None:
                        try:
                            await on_failure(error)
                        except Exception:
                            log.exception("%s: its failure handler failed too", record.name)
                    return
                if time.monotonic() - started > 10 * self._max_backoff:
                    delay = self._initial_backoff  # it had been healthy for a good while
                log.exception("%s failed; restarting in %.2f s", record.name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                record.restarts += 1
            finally:
                record.running = False


async def run_all(steps: list[tuple[str, Callable[[], Awaitable[object]]]]) -> None:
    """Run every teardown step in order even if earlier ones fail; each failure is logged.

    Why: shutdown that stops at the first failing component leaves the database pool and
    the broker open (connections leak, in-flight writes are cut instead of finished).
    """
    for name, step in steps:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.exception("shutdown: %s failed; continuing", name)
