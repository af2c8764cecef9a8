"""chatr's own media endpoints (the embedded default; with S3 the bucket serves both ways).

`PUT /media/uploads/{token}`: the raw bytes of one upload, whose signed URL `createUpload`
handed out. Streamed to the media folder chunk by chunk, with the declared size enforced as
the bytes arrive (a longer body is cut off and refused with 413), then checked by
chatr.services.uploads (real type by magic bytes, image facts, EXIF removed).

`GET /media/files/{token}/{name}`: one attachment's bytes, for as long as its short-lived
signed URL lives; only participants are handed such URLs (chatr.services.attachments).

`GET /media/pictures/{token}/{variant}.jpg`: an avatar or cover in one size, at the stable,
unguessable URL `avatarUrl`/`coverUrl` hold (chatr.services.pictures); on S3, a redirect to
a presigned GET.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from chatr.errors import BadUserInput, ChatrError, Conflict, ErrorCode, NotFound
from chatr.http.media import error_body
from chatr.runtime import Runtime
from chatr.services import pictures, uploads

_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.BAD_USER_INPUT: 400,
    ErrorCode.RATE_LIMITED: 429,
}
#: Shown in the browser rather than downloaded: media a chat displays inline.
_INLINE = ("image/", "audio/", "video/")


def _refusal(error: ChatrError) -> Response:
    status = _STATUS.get(error.code, 400)
    if error.extensions.get("reason") == "TOO_LARGE":
        status = 413
    return JSONResponse(error_body(error), status_code=status)


async def upload(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    token = request.path_params["token"]
    declared = request.headers.get("content-length")
    try:
        if declared is not None and not declared.isdigit():
            raise BadUserInput("Content-Length is not a number.", field="size")
        stored = await uploads.receive(runtime, token=token, chunks=request.stream())
    except (NotFound, Conflict, BadUserInput) as error:
        return _refusal(error)
    facts = stored.extra or {}
    return JSONResponse(
        {
            "contentType": stored.content_type,
            "size": stored.size_bytes,
            **{key: facts[key] for key in ("width", "height", "durationSeconds") if key in facts},
        }
    )


async def download(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        found = await uploads.local_download(runtime, token=request.path_params["token"])
    except NotFound as error:
        return _refusal(error)
    inline = found.content_type.startswith(_INLINE)
    return FileResponse(
        found.path,
        media_type=found.content_type,
        filename=found.file_name or "file",
        content_disposition_type="inline" if inline else "attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=60",
        },
    )


async def picture(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    variant = request.path_params["variant"].removesuffix(".jpg")
    key = pictures.stored_key(request.path_params["token"], variant)
    if key is None:
        return _refusal(NotFound("No such picture.", field="url"))
    presigned = runtime.storage.download_url(
        key,
        expires_seconds=runtime.settings.download_url_ttl_seconds,
        file_name=f"{variant}.jpg",
        content_type="image/jpeg",
    )
    if presigned is not None:
        return RedirectResponse(presigned, status_code=307)
    path = runtime.storage.local_path(key)
    if path is None or not path.is_file():
        return _refusal(NotFound("No such picture.", field="url"))
    return FileResponse(
        path,
        media_type="image/jpeg",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"},
    )
