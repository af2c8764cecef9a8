"""Global ids in tests: what a client gets from the API, built from a database key.

Tests that reach into the database (or make rows through services) use these to name the
same objects over the API; everything else takes ids from API answers, as a client does.
"""

from __future__ import annotations

from chatr import global_ids
from chatr.global_ids import Kind

__all__ = ["Kind", "global_id", "kind_of", "missing", "pk"]

#: A key no row of a test database reaches.
MISSING_PK = 2**62


def global_id(kind: Kind, pk: int | str) -> str:
    """The API's id of row `pk` shown as `kind`."""
    return global_ids.encode(kind, int(pk))


def pk(value: str) -> int:
    """The database key inside an id the API gave (of any kind)."""
    parsed = global_ids.parse(value)
    assert parsed is not None, f"not a global id: {value!r}"
    return parsed[1]


def kind_of(value: str) -> Kind:
    """What an id the API gave names."""
    parsed = global_ids.parse(value)
    assert parsed is not None, f"not a global id: {value!r}"
    return parsed[0]


def missing(kind: Kind) -> str:
    """A well-formed id of `kind` that names nothing."""
    return global_ids.encode(kind, MISSING_PK)
