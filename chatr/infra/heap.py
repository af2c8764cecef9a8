"""How the process's cyclic garbage collector is set up once start-up is over.

Two things, both measured with `bench/send_cpu.py` (CPU per send in-process):

* `gc.freeze()`: everything built during start-up (modules, the schema, settings, the ORM's
  state) lives as long as the process, so it leaves the collector's generations and full
  collections walk only what requests create
  (https://docs.python.org/3/library/gc.html#gc.freeze).
* A young-generation threshold of 10,000 instead of CPython's 700: one request creates a few
  hundred container objects, nearly all freed by reference counting when it ends, so at 700
  the collector ran about every eighth request and scanned mostly live, in-flight objects.
  That was ~5 % of a send's CPU (0.78 → 0.74 ms); what it still finds (real reference cycles)
  is collected a little later, the memory it holds meanwhile bounded by the threshold.

Neither helps if requests leave reference cycles: what is in a cycle survives its request
until a collection, every collection walks it again while it waits in the older
generations, and the more requests are in flight the more there is to walk. Two such cycles
per send (the planned execution's resolve-info helpers, a waiting pool checkout's timeout)
made the collector a tenth of a send's CPU at 1,000 sends in flight; the request path now
leaves none, and tests (tests/support/cycles.py) keep it so.
"""

import gc

YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Freeze what exists now and collect young objects less often; idempotent."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
