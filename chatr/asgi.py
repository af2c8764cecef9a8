"""The app as uvicorn imports it (`chatr.asgi:app`), configured from the environment.

A module-level app is needed for `--workers N`; building it opens nothing (the lifespan does).
"""

import sys

from chatr.app import create_app
from chatr.infra import heap
from chatr.infra.outbox import undelivered_codes_problem
from chatr.settings import load_settings

_settings = load_settings()
if _problem := undelivered_codes_problem(_settings):
    # `chatr serve` checks first; this covers `uvicorn chatr.asgi:app` (a message, no traceback).
    print(f"chatr: {_problem}", file=sys.stderr)
    raise SystemExit(2)
app = create_app(_settings)

# Everything allocated so far (modules, the schema, settings) lives as long as the process.
heap.settle()
