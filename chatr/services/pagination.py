"""The one keyset pagination helper behind every Relay connection.

Cursors are opaque (base64 of the sort-key values), so clients cannot depend on their shape
and pages stay stable while new rows arrive, unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from chatr.errors import BadUserInput
from chatr.services import validation

#: A sort key: a column, or an expression such as a search rank (its SQL type says what a
#: cursor may hold for it).
Key = InstrumentedAttribute[Any] | ColumnElement[Any]

T = TypeVar("T")
MAX_PAGE = 100
DEFAULT_PAGE = 20
#: What a BIGINT column holds; a larger number in a cursor could not be compared with it.
_BIGINT = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Page(Generic[T]):
    edges: list[tuple[str, T]]
    has_next_page: bool
    has_previous_page: bool

    @property
    def start_cursor(self) -> str | None:
        return self.edges[0][0] if self.edges else None

    @property
    def end_cursor(self) -> str | None:
        return self.edges[-1][0] if self.edges else None


@dataclass(frozen=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def validated(self) -> PageRequest:
        if self.first is not None and self.last is not None:
            raise BadUserInput("Pass either first or last, not both.", field="first")
        for name, value in (("first", self.first), ("last", self.last)):
            if value is not None and not 0 <= value <= MAX_PAGE:
                raise BadUserInput(f"{name} must be between 0 and {MAX_PAGE}.", field=name)
        if self.first is None and self.last is None:
            return PageRequest(first=DEFAULT_PAGE, after=self.after, before=self.before)
        return self


def encode_cursor(values: Sequence[Any]) -> str:
    """The opaque cursor of a row whose sort keys have these values."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _key_value(key: Key, value: Any) -> Any:
    """A cursor's value for `key`, if it is one the column could hold (ValueError if not): a
    cursor is client input, and a string or a huge number compared with an integer column
    would fail in the database."""
    python_type = key.type.python_type
    if python_type is datetime:
        return datetime.fromisoformat(value)
    if python_type is int and type(value) is int and value in _BIGINT:
        return value
    if python_type is float and type(value) in (int, float) and math.isfinite(value):
        return float(value)
    if python_type is str and isinstance(value, str) and validation.storable(value):
        return value
    raise ValueError


def _decode(cursor: str, keys: Sequence[Key]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(raw, list) or len(raw) != len(keys):
            raise ValueError
        return [_key_value(key, value) for key, value in zip(keys, raw, strict=True)]
    except (ValueError, TypeError, binascii.Error, NotImplementedError):
        raise BadUserInput("The cursor is not valid.", field="after") from None


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    *,
    keys: Sequence[Key],
    descending: bool,
    request: PageRequest,
    key_values: Callable[[Any], Sequence[Any]],
    scalars: bool = True,
) -> Page[Any]:
    """Page `statement` ordered by `keys` (unique together) in the connection's direction.

    `first/after` walks in that direction; `last/before` walks from the other end and the
    result is flipped back, so edges are always in connection order.
    """
    request = request.validated()
    backwards = request.last is not None
    limit = request.last if backwards else request.first
    assert limit is not None
    # Walk direction in SQL: the connection order, or its reverse for last/before.
    walk_desc = descending != backwards
    key_tuple = tuple_(*keys)

    def typed(cursor: str) -> Any:
        return tuple_(
            *(literal(v, type_=k.type) for k, v in zip(keys, _decode(cursor, keys), strict=True))
        )

    if request.after is not None:
        values = typed(request.after)
        statement = statement.where(key_tuple < values if descending else key_tuple > values)
    if request.before is not None:
        values = typed(request.before)
        statement = statement.where(key_tuple > values if descending else key_tuple < values)
    statement = statement.order_by(*(k.desc() if walk_desc else k.asc() for k in keys))
    statement = statement.limit(limit + 1)
    rows = list(await session.scalars(statement) if scalars else await session.execute(statement))
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    edges = [(encode_cursor(key_values(row)), row) for row in rows]
    if backwards:
        return Page(edges, has_next_page=request.before is not None, has_previous_page=has_more)
    return Page(edges, has_next_page=has_more, has_previous_page=request.after is not None)
