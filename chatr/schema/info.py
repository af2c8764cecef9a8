"""`ChatrInfo`: the `info` every resolver of the schema receives."""

from __future__ import annotations

from strawberry.types import Info

from chatr.context import Context

ChatrInfo = Info[Context, None]
