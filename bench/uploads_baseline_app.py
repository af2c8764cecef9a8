"""The comparison baseline for bench/uploads.py: a bare starlette streaming endpoint.

`PUT /upload/{name}` writes the request body, chunk by chunk as it arrives, to
`<BASELINE_UPLOAD_DIR>/<name>` (through a worker thread, as chatr's local storage does) and
answers the byte count. No auth, no database, no checks: the least a streaming upload costs
on this stack (uvicorn + starlette + the disk). Not meant to be deployed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

UPLOAD_DIR = Path(os.environ.get("BASELINE_UPLOAD_DIR", "baseline-uploads"))


async def upload(request: Request) -> Response:
    path = UPLOAD_DIR / Path(request.path_params["name"]).name
    written = 0
    handle = await asyncio.to_thread(open, path, "wb")
    try:
        async for chunk in request.stream():
            written += len(chunk)
            if chunk:
                await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)
    return JSONResponse({"size": written})


async def healthz(_: Request) -> Response:
    return Response("ok")


app = Starlette(
    routes=[Route("/upload/{name}", upload, methods=["PUT"]), Route("/healthz", healthz)]
)
