"""The app as uvicorn imports it (`chatr.asgi:app`), configured from the environment.

A module-level app is needed for `--workers N`; building it opens nothing (the lifespan does).
"""

from chatr.app import create_app
from chatr.settings import load_settings

app = create_app(load_settings())
