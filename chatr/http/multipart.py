"""The GraphQL multipart request spec: small files sent with the operation itself.

A `multipart/form-data` POST carries `operations` (the usual JSON request, one or a batch),
`map` (which form field holds the file for which variable path, e.g.
`{"0": ["variables.file"]}`) and the files. Each file becomes an `Upload` scalar value
(chatr.schema.media: `uploadFile`). apollo-upload-client, urql's multipart fetch exchange
and gql's file uploads speak it.

Form posts are "simple" requests that browsers send cross-site without a CORS preflight, so
a multipart request must carry a header that forces one (CSRF guard, as Apollo Server does):
`Authorization` (every upload is signed in anyway), `GraphQL-Require-Preflight`,
`Apollo-Require-Preflight` or `X-Apollo-Operation-Name`. The body is cut off at the
multipart limit as it arrives (413); files spool to disk past 1 MB, never all in memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from chatr import frames
from chatr.errors import MalformedRequest, PayloadTooLarge
from chatr.http.params import limited_stream

MULTIPART = "multipart/form-data"
#: Any of these makes a browser preflight the request, so a foreign page cannot forge it.
PREFLIGHT_HEADERS = (
    "authorization",
    "graphql-require-preflight",
    "apollo-require-preflight",
    "x-apollo-operation-name",
)
#: Form fields besides the files: `operations` and `map`, each at most this long.
MAX_FIELD_BYTES = 1024 * 1024


def is_multipart(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == MULTIPART


def _require_preflight(request: Request) -> None:
    if not any(request.headers.get(name) for name in PREFLIGHT_HEADERS):
        raise MalformedRequest(
            "A multipart request must send 'Authorization' or 'GraphQL-Require-Preflight: 1' "
            "(form posts skip the browser's CORS preflight; this header forces one).",
            reason="PREFLIGHT_REQUIRED",
        )


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"A multipart request may be at most {max_bytes} bytes; send larger files with "
        "createUpload.",
        limit=max_bytes,
    )


def _json_field(form: FormData, name: str) -> Any:
    raw = form.get(name)
    if not isinstance(raw, str):
        raise MalformedRequest(f"A multipart request needs the `{name}` field (JSON).")
    try:
        return frames.decode_json(raw)
    except json.JSONDecodeError as error:
        raise MalformedRequest(f"The `{name}` field is not valid JSON ({error.msg}).") from None


def _place(operations: Any, path: str, file: UploadFile) -> None:
    """Put `file` where `path` (dot-separated, e.g. `variables.files.0`, or `0.variables.file`
    in a batch) points; the spec's clients send `null` there."""
    *parents, last = path.split(".")
    target = operations
    try:
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            index = int(last)
            if target[index] is not None:
                raise LookupError
            target[index] = file
        elif isinstance(target, dict) and target.get(last, "absent") is None:
            target[last] = file
        else:
            raise LookupError
    except (LookupError, ValueError, TypeError):
        raise MalformedRequest(
            f"`map` points at {path!r}, which is not a null in `operations`."
        ) from None


def _with_files(form: FormData) -> Any:
    operations = _json_field(form, "operations")
    file_map = _json_field(form, "map")
    if not isinstance(file_map, dict):
        raise MalformedRequest("`map` must be an object of field name to variable paths.")
    for field, paths in file_map.items():
        file = form.get(field)
        if not isinstance(file, UploadFile):
            raise MalformedRequest(f"`map` names the file field {field!r}, which was not sent.")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise MalformedRequest(f"`map[{field!r}]` must be a list of variable paths.")
        for path in paths:
            _place(operations, path, file)
    return operations


@asynccontextmanager
async def multipart_operations(
    request: Request, *, max_bytes: int, max_files: int
) -> AsyncIterator[Any]:
    """The `operations` payload with its files in place; the files are closed (and their
    spooled temporary files deleted) when the request is done."""
    _require_preflight(request)
    parser = MultiPartParser(
        request.headers,
        limited_stream(request, max_bytes, _too_large),
        max_files=max_files,
        max_fields=2,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise MalformedRequest(f"The multipart body cannot be read: {error.message}") from None
    try:
        yield _with_files(form)
    finally:
        await form.close()
