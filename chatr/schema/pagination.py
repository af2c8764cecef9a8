"""Relay connection types, built from the service layer's `Page`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types import Info

from chatr.services.pagination import Page, PageRequest

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
    def from_page(cls, page: Page[Any]) -> Connection[Any]:
        """The page's nodes are models; strawberry resolves each as the node type N (a view
        of that model), which is why any page is accepted here."""
        return cls(
            edges=[Edge(cursor=cursor, node=node) for cursor, node in page.edges],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.start_cursor,
                end_cursor=page.end_cursor,
            ),
        )


PageResolver = Callable[..., Awaitable[Page[Any]]]


def connection_field(node: type, resolve: PageResolver, *, description: str) -> Any:
    """A root field `name(first, after, last, before): <Node>Connection` over `resolve`.

    `resolve(context, page=PageRequest)` is a resolver-layer function; the pagination
    arguments, their limits and the Page -> Connection glue are written once, here.
    """

    async def resolver(
        info: Info[Any, Any],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Any:
        page = await resolve(
            info.context, page=PageRequest(first=first, after=after, last=last, before=before)
        )
        return Connection.from_page(page)

    # Real objects, not strings: the node type is only known here, at call time.
    resolver.__annotations__ = {
        "info": Info[Any, Any],
        "first": int | None,
        "after": str | None,
        "last": int | None,
        "before": str | None,
        "return": Connection[node],  # type: ignore[valid-type]
    }
    return strawberry.field(resolver=resolver, description=description)
