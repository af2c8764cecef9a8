"""What a piece of code leaves for the cyclic garbage collector.

Objects in a reference cycle are not freed when their last outside reference goes: they wait
for the cyclic collector, which under load then walks every request's leftovers. Code on the
request path should leave none; `cyclic_garbage` says what it left.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection inside the block (so nothing is collected before it is
    counted), starting from a collected heap."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cyclic_garbage() -> list[object]:
    """The objects only the cyclic collector can free now (it frees them)."""
    flags = gc.get_debug()
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(flags)
    return found


def named(objects: list[object], qualname_part: str) -> list[object]:
    """Those of `objects` whose type's (or, for functions, own) qualified name contains
    `qualname_part`."""
    return [
        each
        for each in objects
        if qualname_part in getattr(each, "__qualname__", "")
        or qualname_part in type(each).__qualname__
    ]
