"""The one Schema."""

from __future__ import annotations

from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from chatr.schema.errors import ChatrErrors
from chatr.schema.events import EVENT_TYPES
from chatr.schema.mutation import Mutation
from chatr.schema.query import Query
from chatr.schema.subscription import Subscription
from chatr.settings import Settings


class ChatrSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ChatrErrors logs the unexpected ones; client mistakes are not server errors.
        return None


def build_schema(settings: Settings) -> strawberry.Schema:
    extensions: list[type[SchemaExtension] | partial[SchemaExtension]] = [
        ChatrErrors,
        partial(ParserCache, maxsize=512),
        partial(ValidationCache, maxsize=512),
        partial(QueryDepthLimiter, max_depth=settings.max_query_depth),
        partial(MaxAliasesLimiter, max_alias_count=settings.max_aliases),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
    ]
    if settings.is_production:
        extensions.append(DisableIntrospection)
    return ChatrSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=EVENT_TYPES,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(disable_field_suggestions=settings.is_production),
    )


def export_sdl(settings: Settings | None = None) -> str:
    """The SDL committed as schema.graphql (development settings: the full public API)."""
    return build_schema(settings or Settings()).as_str() + "\n"
