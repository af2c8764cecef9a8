"""The collector set-up every chatr process gets once start-up is over (chatr.infra.heap)."""

import gc
from collections.abc import Iterator

import pytest

from chatr.infra import heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_start_up_objects_and_collects_young_ones_less_often() -> None:
    gc.set_threshold(700, 10, 10)
    start_up_state = [{"built": index} for index in range(100)]

    heap.settle()

    assert gc.get_freeze_count() >= len(start_up_state)
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_made_after_settling_is_still_collected() -> None:
    heap.settle()

    class Node:
        partner: "Node"

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    del first, second

    assert gc.isenabled()
    assert gc.collect() >= 2
