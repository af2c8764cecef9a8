"""`node(id:)` and `nodes(ids:)`: read the viewer, decode the ids, call the node service."""

from __future__ import annotations

from collections.abc import Sequence

from chatr import global_ids
from chatr.context import Context
from chatr.services import nodes


async def node(ctx: Context, *, id: str) -> object | None:
    viewer = await ctx.viewer()
    kind, pk = global_ids.decode_any(id, field="id")
    return await nodes.find(ctx.runtime, viewer=viewer, kind=kind, pk=pk)


async def nodes_by_ids(ctx: Context, *, ids: Sequence[str]) -> list[object | None]:
    viewer = await ctx.viewer()
    nodes.require_bounded(len(ids))
    refs = [global_ids.decode_any(value, field="ids") for value in ids]
    return await nodes.find_many(ctx.runtime, viewer=viewer, refs=refs)
