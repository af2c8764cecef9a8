"""Every root field asks `chatr.services.guests.ensure_allowed` before it runs.

The rule (which operations a support-widget guest may use) lives in the service layer; this
only makes sure no root field can skip it, including fields added later: it wraps the
resolver of every Query and Mutation field and the `subscribe` of every Subscription field
once, when the schema is built. Nested fields are not wrapped (no cost per field), nor is the
per-event execution of a live subscription (the subscription was checked when it started).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema

from chatr.context import Context
from chatr.errors import Unauthenticated
from chatr.services import guests


async def _viewer_or_none(context: Context) -> Any:
    """The viewer, or None when anonymous or when its token is bad: the field's own resolver
    then answers UNAUTHENTICATED as it always did (or does not care, like `refreshToken`)."""
    try:
        return await context.optional_viewer()
    except Unauthenticated:
        return None


def _guarded(name: str, resolve: Callable[..., Any]) -> Callable[..., Any]:
    async def guarded(source: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
        guests.ensure_allowed(await _viewer_or_none(info.context), name)
        result = resolve(source, info, **arguments)
        return await result if inspect.isawaitable(result) else result

    return guarded


def _guard_fields(root: GraphQLObjectType | None, *, subscriptions: bool) -> None:
    if root is None:
        return
    for name, field in root.fields.items():
        _guard_field(name, field, subscriptions=subscriptions)


def _guard_field(name: str, field: GraphQLField, *, subscriptions: bool) -> None:
    if subscriptions:
        assert field.subscribe is not None, name
        field.subscribe = _guarded(name, field.subscribe)
    else:
        assert field.resolve is not None, name
        field.resolve = _guarded(name, field.resolve)


def enforce_guest_scope(schema: GraphQLSchema) -> None:
    """Wrap the root fields of a freshly built schema (call once per schema)."""
    _guard_fields(schema.query_type, subscriptions=False)
    _guard_fields(schema.mutation_type, subscriptions=False)
    _guard_fields(schema.subscription_type, subscriptions=True)
