"""Loaders shared by two fields: cancelling one caller never cancels the other's result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chatr.loaders import SharedLoader


async def test_a_cancelled_caller_leaves_the_shared_result_to_the_other() -> None:
    release = asyncio.Event()

    async def load(keys: Sequence[int]) -> list[int]:
        await release.wait()
        return [key * 10 for key in keys]

    loader: SharedLoader[int, int] = SharedLoader(load, cache=True)
    first = asyncio.ensure_future(loader.load(1))
    second = asyncio.ensure_future(loader.load(1))  # the same key: the same cached future
    await asyncio.sleep(0)
    # when the first caller is cancelled (graphql-core cancels a failing field's siblings)
    first.cancel()
    release.set()
    # then the second still gets its value, and later loads are served from the cache
    assert await second == 10
    assert await loader.load(1) == 10
    with pytest.raises(asyncio.CancelledError):
        await first
