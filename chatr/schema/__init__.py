"""The one Schema."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter, ParserCache, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from chatr.schema.admin import AdminMutation, AdminQuery
from chatr.schema.errors import ChatrErrors
from chatr.schema.events import EVENT_TYPES
from chatr.schema.groups import GroupMutation, GroupQuery
from chatr.schema.guest_scope import enforce_guest_scope
from chatr.schema.message_requests import MessageRequestMutation, MessageRequestQuery
from chatr.schema.mutation import Mutation
from chatr.schema.presence import PresenceMutation, PresenceSubscription
from chatr.schema.profiles import ProfileMutation, ProfileQuery
from chatr.schema.query import Query
from chatr.schema.social import SocialMutation, SocialQuery, SocialSubscription
from chatr.schema.subscription import Subscription
from chatr.schema.validation import HintlessExecutionContext, validation_extension
from chatr.schema.verification import VerificationMutation
from chatr.settings import Settings


class ChatrSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ChatrErrors logs the unexpected ones; client mistakes are not server errors.
        return None


#: Root fields come from one class per domain; add a domain's classes here.
QUERIES: tuple[type, ...] = (
    Query,
    MessageRequestQuery,
    SocialQuery,
    ProfileQuery,
    AdminQuery,
    GroupQuery,
)
MUTATIONS: tuple[type, ...] = (
    Mutation,
    MessageRequestMutation,
    SocialMutation,
    ProfileMutation,
    PresenceMutation,
    VerificationMutation,
    AdminMutation,
    GroupMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (Subscription, SocialSubscription, PresenceSubscription)


def build_schema(settings: Settings) -> strawberry.Schema:
    """The Schema with the request limits of `settings`: parse (tokens), validation (see
    chatr.schema.validation) and, in production, no introspection and no hints."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        ChatrErrors,
        partial(ParserCache, maxsize=512),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        validation_extension(settings),
    ]
    schema = ChatrSchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS),
        types=EVENT_TYPES,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=settings.is_production),
        execution_context_class=HintlessExecutionContext if settings.is_production else None,
    )
    enforce_guest_scope(schema._schema)
    return schema


def export_sdl(settings: Settings | None = None) -> str:
    """The SDL committed as schema.graphql (development settings: the full public API)."""
    return build_schema(settings or Settings()).as_str() + "\n"
