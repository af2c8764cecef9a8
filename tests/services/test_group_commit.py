"""Group commit (chatr.aio): writes that queue while the database is busy share
one batch, one per key and in queue order, and every caller gets its own outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from chatr.aio import GroupCommit


class Refused(Exception):
    pass


class Runner:
    """A batch runner whose batches the test releases by hand; it records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, items: list[str]) -> Sequence[str | Exception]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [Refused(item) if item.startswith("bad") else item.upper() for item in items]


async def _until_batches(runner: Runner, count: int) -> None:
    async with asyncio.timeout(5):
        while len(runner.batches) < count:
            await asyncio.sleep(0)


async def _occupied(
    commit: GroupCommit[str, str], runner: Runner, key: str = "a", item: str = "a"
) -> asyncio.Task[str]:
    """A first write that takes the only slot: returned once its batch runs."""
    first = asyncio.create_task(commit.submit(key, item))
    await _until_batches(runner, 1)
    return first


async def test_a_write_that_finds_a_free_slot_runs_at_once_alone() -> None:
    runner = Runner()
    runner.release.set()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)

    assert await commit.submit("a", "one") == "ONE"
    assert runner.batches == [["one"]]
    assert (commit.batches, commit.items) == (1, 1)


async def test_writes_that_arrive_while_every_slot_is_busy_share_the_next_batch() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)
    first = await _occupied(commit, runner, "a", "first")
    queued = [asyncio.create_task(commit.submit(key, f"w{key}")) for key in "bcd"]
    await asyncio.sleep(0)
    assert commit.queued == 3

    runner.release.set()

    assert await first == "FIRST"
    assert [await task for task in queued] == ["WB", "WC", "WD"]
    assert runner.batches == [["first"], ["wb", "wc", "wd"]]
    assert (commit.batches, commit.items) == (2, 4)


async def test_one_key_has_one_write_per_batch_and_keeps_its_order() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)
    first = await _occupied(commit, runner, "x", "x0")
    queued = [
        asyncio.create_task(commit.submit(key, item))
        for key, item in [("x", "x1"), ("y", "y1"), ("x", "x2"), ("z", "z1")]
    ]
    await asyncio.sleep(0)

    runner.release.set()
    await asyncio.gather(first, *queued)

    assert runner.batches == [["x0"], ["x1", "y1", "z1"], ["x2"]]


async def test_a_batch_takes_at_most_limit_writes() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=2)
    first = await _occupied(commit, runner)
    queued = [asyncio.create_task(commit.submit(key, key)) for key in "bcde"]
    await asyncio.sleep(0)

    runner.release.set()
    await asyncio.gather(first, *queued)

    assert runner.batches == [["a"], ["b", "c"], ["d", "e"]]


async def test_batches_run_side_by_side_up_to_the_concurrency() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=2, limit=8)
    tasks = [asyncio.create_task(commit.submit(key, key)) for key in "abcd"]
    await _until_batches(runner, 2)
    await asyncio.sleep(0)
    assert runner.batches == [["a"], ["b"]]  # two alone, each at once
    assert commit.queued == 2

    runner.release.set()
    await asyncio.gather(*tasks)

    assert runner.batches == [["a"], ["b"], ["c", "d"]]


async def test_each_caller_gets_its_own_outcome_from_a_shared_batch() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)
    first = await _occupied(commit, runner)
    good = asyncio.create_task(commit.submit("b", "good"))
    bad = asyncio.create_task(commit.submit("c", "bad"))
    await asyncio.sleep(0)

    runner.release.set()

    assert await first == "A"
    assert await good == "GOOD"
    with pytest.raises(Refused):
        await bad
    assert runner.batches[1] == ["good", "bad"]


async def test_a_batch_that_fails_fails_every_caller_in_it_and_the_next_batches_still_run() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=2)
    first = await _occupied(commit, runner)
    queued = [asyncio.create_task(commit.submit(key, key)) for key in "bcd"]
    await asyncio.sleep(0)
    runner.fail_with = RuntimeError("database gone")

    runner.release.set()
    outcomes = await asyncio.gather(first, *queued, return_exceptions=True)

    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert runner.batches == [["a"], ["b", "c"], ["d"]]
    assert commit.queued == 0


async def test_a_caller_that_gives_up_while_queued_is_left_out_of_its_batch() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)
    first = await _occupied(commit, runner)
    gave_up = asyncio.create_task(commit.submit("b", "gave-up"))
    stays = asyncio.create_task(commit.submit("c", "stays"))
    await asyncio.sleep(0)
    gave_up.cancel()
    await asyncio.sleep(0)

    runner.release.set()

    assert await stays == "STAYS"
    await first
    assert gave_up.cancelled()
    assert runner.batches == [["a"], ["stays"]]


async def test_a_caller_that_gives_up_mid_batch_does_not_disturb_the_others() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)
    first = await _occupied(commit, runner)
    gave_up = asyncio.create_task(commit.submit("b", "gave-up"))
    stays = asyncio.create_task(commit.submit("c", "stays"))
    await asyncio.sleep(0)
    runner.release.set()
    runner.release.clear()  # only the batch already waiting goes on
    await first
    await _until_batches(runner, 2)

    gave_up.cancel()
    await asyncio.sleep(0)
    runner.release.set()

    assert await stays == "STAYS"
    assert gave_up.cancelled()
    assert runner.batches == [["a"], ["gave-up", "stays"]]


async def test_stop_waits_for_the_batches_already_running() -> None:
    runner = Runner()
    commit: GroupCommit[str, str] = GroupCommit(runner, concurrency=1, limit=8)
    first = await _occupied(commit, runner)
    queued = asyncio.create_task(commit.submit("b", "b"))
    await asyncio.sleep(0)
    runner.release.set()
    await first
    await _until_batches(runner, 2)

    await commit.stop()

    assert queued.done() and queued.result() == "B"


def test_a_group_commit_needs_room_for_one_batch_of_one() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Runner(), concurrency=0, limit=8)
    with pytest.raises(ValueError):
        GroupCommit(Runner(), concurrency=1, limit=0)
    with pytest.raises(ValueError):
        GroupCommit(Runner(), concurrency=1, limit=8, hold=-0.001)


# -- writes on their way -------------------------------------------------------------------

#: Long enough that no test below reaches it unless it means to.
LONG_HOLD = 10.0


def _announcing(*, limit: int = 8, hold: float = LONG_HOLD) -> tuple[Runner, GroupCommit[str, str]]:
    """A group commit with one slot whose batches run as soon as they start."""
    runner = Runner()
    runner.release.set()
    return runner, GroupCommit(runner, concurrency=1, limit=limit, hold=hold)


class Announced:
    """A write announced to `commit` that submits when the test lets it (or leaves unsent)."""

    def __init__(self, commit: GroupCommit[str, str], key: str) -> None:
        self.ready = asyncio.Event()
        self.send = True
        self.task = asyncio.create_task(self._run(commit, key))

    async def _run(self, commit: GroupCommit[str, str], key: str) -> str | None:
        with commit.coming():
            await self.ready.wait()
            if not self.send:
                return None  # (a write that went another way, or gave up)
            return await commit.submit(key, key)

    async def go(self) -> None:
        self.ready.set()
        for _ in range(3):
            await asyncio.sleep(0)


async def test_a_free_slot_waits_for_the_writes_on_their_way_and_they_share_it() -> None:
    runner, commit = _announcing()
    first, second = Announced(commit, "a"), Announced(commit, "b")
    await asyncio.sleep(0)

    await first.go()
    assert runner.batches == [] and commit.queued == 1  # b is still on its way
    await second.go()

    assert [await first.task, await second.task] == ["A", "B"]
    assert runner.batches == [["a", "b"]]


async def test_a_write_nobody_else_is_announced_for_runs_at_once_alone() -> None:
    runner, commit = _announcing()
    only = Announced(commit, "a")
    await asyncio.sleep(0)

    await only.go()

    assert only.task.done() and only.task.result() == "A"
    assert runner.batches == [["a"]]


async def test_an_announced_write_that_never_comes_holds_the_slot_no_longer_than_the_hold() -> None:
    runner, commit = _announcing(hold=0.05)
    first, stuck = Announced(commit, "a"), Announced(commit, "b")
    await asyncio.sleep(0)
    await first.go()
    assert runner.batches == []

    async with asyncio.timeout(2):
        assert await first.task == "A"

    assert runner.batches == [["a"]]
    assert not stuck.task.done()
    await stuck.go()  # it comes after all, to a slot that waits for nobody
    assert await stuck.task == "B"
    assert runner.batches == [["a"], ["b"]]


async def test_an_announced_write_that_goes_another_way_frees_the_waiting_slot_at_once() -> None:
    runner, commit = _announcing()
    first, elsewhere = Announced(commit, "a"), Announced(commit, "b")
    await asyncio.sleep(0)
    await first.go()
    assert runner.batches == []

    elsewhere.send = False
    await elsewhere.go()

    assert await first.task == "A"
    assert await elsewhere.task is None
    assert runner.batches == [["a"]]


async def test_a_full_batch_waits_for_nobody() -> None:
    runner, commit = _announcing(limit=2)
    writes = [Announced(commit, key) for key in "abc"]
    await asyncio.sleep(0)

    await writes[0].go()
    await writes[1].go()  # two queued: a full batch, though c is still on its way

    assert [await writes[0].task, await writes[1].task] == ["A", "B"]
    assert runner.batches == [["a", "b"]]
    await writes[2].go()
    assert await writes[2].task == "C"


async def test_stop_sends_what_waits_for_writes_on_their_way() -> None:
    runner, commit = _announcing()
    first, stuck = Announced(commit, "a"), Announced(commit, "b")
    await asyncio.sleep(0)
    await first.go()
    assert runner.batches == []

    await commit.stop()

    assert await first.task == "A"
    stuck.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stuck.task


async def test_without_a_hold_announcing_changes_nothing() -> None:
    runner, commit = _announcing(hold=0.0)
    first, second = Announced(commit, "a"), Announced(commit, "b")
    await asyncio.sleep(0)

    await first.go()

    assert first.task.done() and runner.batches == [["a"]]
    await second.go()
    assert await second.task == "B"
