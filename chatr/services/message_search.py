"""Full-text search over the messages of the viewer's conversations.

Where the index lives (migration 0004): on PostgreSQL a stored generated tsvector column
(`messages.search_vector`, 'simple' configuration) with a GIN index; on SQLite an FTS5 table
(`message_search`) kept in step with `messages` by triggers. Both follow the message row by
themselves: inserting, editing (a new body), unsending (deleted_at set, body cleared) or
deleting a message updates the index in the same statement, so no writer has anything to
call and none can forget to. Only messages that may be found are indexed at all: not
unsent, not SYSTEM, not ENCRYPTED (the server never holds their text).

What the viewer may find is decided here, per query, by the same rules as history:
- only conversations where the viewer is an accepted member now: a former member finds
  nothing of a group they left (as `conversation(id)` answers NOT_FOUND for it), an invitee
  nothing before accepting; filtering by such a conversation is NOT_FOUND
  (chatr.services.conversations.require_accepted), like every other field taking its id;
- nothing at or below the viewer's `cleared_seq` (a conversation cleared for them) and
  nothing they deleted for themselves (`message_hidden`).

Results are ranked (PostgreSQL `ts_rank_cd`, SQLite `bm25`: higher is better), newest first
among equals, and paged by the one pagination helper on (rank, id). The snippet is computed
for the page's rows only, in a second statement, so a query that matches many messages does
not build a headline for each of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    REAL,
    ColumnElement,
    Float,
    bindparam,
    column,
    exists,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from chatr.errors import BadUserInput
from chatr.models import Membership, MembershipState, Message, MessageHidden
from chatr.models.message import SEARCH_COLUMN, SEARCH_TABLE
from chatr.services import conversations, validation
from chatr.services.pagination import Page, PageRequest, paginate

MAX_QUERY_LENGTH = 200
MAX_TERMS = 16
#: Around each match in a snippet: these private-use characters never reach a client (they
#: are turned into `highlights` ranges), so a body cannot inject markup through a snippet.
_START, _STOP = "\ue000", "\ue001"
_WORD = re.compile(r"\w+")
_CONFIG: ColumnElement[Any] = literal_column("'simple'::regconfig")

_messages = Message.__table__
_vector = column(SEARCH_COLUMN, TSVECTOR, _selectable=_messages)
_fts = table(SEARCH_TABLE, column("rowid"), column("body"))
_fts_name: ColumnElement[Any] = literal_column(SEARCH_TABLE)


@dataclass(frozen=True)
class Filters:
    """Optional narrowing: one conversation, one sender, a time range [since, until)."""

    conversation_id: int | None = None
    sender_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Hit:
    """A message that matched, with its rank and a snippet of its text around the matches."""

    message: Message
    rank: float
    snippet: str
    #: (start, end) offsets into `snippet`, in code points, of each matched term.
    highlights: list[tuple[int, int]]


def terms(text: str) -> list[str]:
    """The words searched for (all must occur, in any order); BAD_USER_INPUT if none.

    Operators are not offered: the same plain words mean the same on both dialects, and user
    text never reaches a query parser (FTS5's syntax is quoted away, PostgreSQL gets
    `plainto_tsquery`).
    """
    text = validation.text(text, field="query")
    if len(text) > MAX_QUERY_LENGTH:
        raise BadUserInput(f"A search is at most {MAX_QUERY_LENGTH} characters.", field="query")
    words = _WORD.findall(text)
    if not words:
        raise BadUserInput("Search for at least one word.", field="query")
    return words[:MAX_TERMS]


def _highlighted(raw: str) -> tuple[str, list[tuple[int, int]]]:
    """A marked-up snippet as plain text and the ranges that were marked."""
    text: list[str] = []
    ranges: list[tuple[int, int]] = []
    length = 0
    start: int | None = None
    for char in raw:
        if char == _START:
            start = length
        elif char == _STOP:
            if start is not None and length > start:
                ranges.append((start, length))
            start = None
        else:
            text.append(char)
            length += 1
    return "".join(text), ranges


def _matches(words: Sequence[str], *, postgres: bool) -> CTE:
    """Every indexed message containing all the words, with its rank and what the rules and
    filters look at, read through the index alone.

    Materialised on PostgreSQL: asyncpg's prepared statements get a generic plan, which
    (not knowing how rare the words are) combined the GIN scan with a scan of the whole
    conversation's (conversation_id, seq) index: 230 ms for 100 matches in a million
    messages, instead of under 1 ms.
    """
    columns = [
        _messages.c.id,
        _messages.c.conversation_id,
        _messages.c.seq,
        _messages.c.sender_id,
        _messages.c.created_at,
    ]
    if postgres:
        tsquery = func.plainto_tsquery(_CONFIG, bindparam("search_text", " ".join(words)))
        rank = func.ts_rank_cd(_vector, tsquery, type_=REAL).label("rank")
        matched = select(*columns, rank).where(_vector.op("@@")(tsquery))
        return matched.cte("matched").prefix_with("MATERIALIZED")
    rank = (-func.bm25(_fts_name, type_=Float)).label("rank")
    matched = (
        select(*columns, rank)
        .select_from(_fts)
        .join(_messages, _messages.c.id == _fts.c.rowid)
        .where(_fts_name.op("MATCH")(bindparam("search_text", _fts_query(words))))
    )
    return matched.cte("matched")


def _visible_to(matched: CTE, viewer_id: int, filters: Filters) -> list[ColumnElement[bool]]:
    """The rules of the module docstring, on `matched` joined with the viewer's membership."""
    conditions: list[ColumnElement[bool]] = [
        matched.c.seq > Membership.cleared_seq,
        ~exists().where(
            MessageHidden.message_id == matched.c.id, MessageHidden.user_id == viewer_id
        ),
    ]
    if filters.conversation_id is not None:
        conditions.append(matched.c.conversation_id == filters.conversation_id)
    if filters.sender_id is not None:
        conditions.append(matched.c.sender_id == filters.sender_id)
    if filters.since is not None:
        conditions.append(matched.c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(matched.c.created_at < filters.until)
    return conditions


async def search(
    session: AsyncSession,
    *,
    viewer_id: int,
    query: str,
    filters: Filters,
    page: PageRequest,
) -> Page[Hit]:
    """Messages of the viewer's conversations containing every word of `query`, best first."""
    words = terms(query)
    if filters.since and filters.until and filters.since >= filters.until:
        raise BadUserInput("`since` must be before `until`.", field="since")
    if filters.conversation_id is not None:
        await conversations.get_membership_or_raise(
            session, viewer_id=viewer_id, conversation_id=filters.conversation_id
        )
    postgres = session.get_bind().dialect.name == "postgresql"
    matched = _matches(words, postgres=postgres)
    statement = (
        select(matched.c.id, matched.c.rank)
        .join(
            Membership,
            (Membership.conversation_id == matched.c.conversation_id)
            & (Membership.user_id == viewer_id)
            & (Membership.state == MembershipState.ACCEPTED),
        )
        .where(*_visible_to(matched, viewer_id, filters))
    )
    found = await paginate(
        session,
        statement,
        keys=(matched.c.rank, matched.c.id),
        descending=True,
        request=page,
        key_values=lambda row: (row.rank, row.id),
        scalars=False,
    )
    ids = [row.id for _, row in found.edges]
    messages = {
        message.id: message
        for message in await session.scalars(select(Message).where(Message.id.in_(ids)))
    }
    snippets = await _snippets(session, words, ids, postgres=postgres)
    edges = []
    for cursor, row in found.edges:
        message = messages[row.id]
        text, ranges = _highlighted(snippets.get(message.id) or message.body or "")
        edges.append((cursor, Hit(message, float(row.rank), text, ranges)))
    return Page(edges, has_next_page=found.has_next_page, has_previous_page=found.has_previous_page)


def _fts_query(words: Sequence[str]) -> str:
    """FTS5: every word as a quoted string (so none is read as an operator), all required."""
    return " ".join(f'"{word}"' for word in words)


async def _snippets(
    session: AsyncSession, words: Sequence[str], message_ids: list[int], *, postgres: bool
) -> dict[int, str]:
    """The marked-up excerpt of each of these messages around the searched words."""
    if not message_ids:
        return {}
    statement: Any
    if postgres:
        body = func.translate(_messages.c.body, literal(_START + _STOP), literal(""))
        headline = func.ts_headline(
            _CONFIG,
            body,
            func.plainto_tsquery(_CONFIG, bindparam("search_text", " ".join(words))),
            literal(
                f"StartSel={_START}, StopSel={_STOP}, MaxWords=24, MinWords=12, "
                'MaxFragments=2, FragmentDelimiter=" … "'
            ),
        )
        statement = select(_messages.c.id, headline).where(_messages.c.id.in_(message_ids))
    else:
        snippet = func.snippet(_fts_name, 0, _START, _STOP, "…", 16)
        statement = select(_fts.c.rowid, snippet).where(
            _fts_name.op("MATCH")(bindparam("search_text", _fts_query(words))),
            _fts.c.rowid.in_(message_ids),
        )
    return {row[0]: row[1] for row in await session.execute(statement)}
