"""JSON out (chatr.http.media.encode): orjson where it can, and exactly the standard
library's json for everything orjson refuses."""

from __future__ import annotations

import json

import pytest

from chatr.http.media import encode


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"sendMessage": {"id": "TWVzc2FnZTox", "seq": 42, "ok": True, "x": None}}},
        {"errors": [{"message": "Ünïcödé ✓ — not escaped", "extensions": {"code": "X"}}]},
        {"big": 2**70},  # beyond orjson's 64 bits
        {1: "a key that is not a string"},
    ],
)
def test_encoding_writes_what_compact_utf8_json_dumps_writes(body: object) -> None:
    expected = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    assert encode(body) == expected


def test_floats_are_written_to_the_same_value_if_not_always_in_the_same_notation() -> None:
    # orjson writes 1e-7 where json writes 1e-07: the same number to every JSON reader
    numbers = [1.5, -0.0, 1e-7, 123456789.125, 2.5e300, 0.1 + 0.2]
    assert json.loads(encode(numbers)) == numbers
