"""Relay connection types, built from the service layer's `Page`."""

from __future__ import annotations

from typing import Generic, TypeVar

import strawberry

from chatr.services.pagination import Page

N = TypeVar("N")


@strawberry.type(description="Where a page sits in the whole list (Relay).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[N]):
    cursor: str = strawberry.field(description="Opaque; pass as `after`/`before`.")
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[N]) -> Connection[N]:
        return cls(
            edges=[Edge(cursor=cursor, node=node) for cursor, node in page.edges],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            ),
        )
