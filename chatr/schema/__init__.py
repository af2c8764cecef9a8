"""The one Schema."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxTokensLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from chatr.schema import argument_plans
from chatr.schema.admin import AdminMutation, AdminQuery
from chatr.schema.auth import AuthMutation, AuthQuery
from chatr.schema.conversations import ConversationQuery
from chatr.schema.error_codes import ErrorCodeEnum
from chatr.schema.errors import ChatrErrors
from chatr.schema.events import EVENT_TYPES
from chatr.schema.groups import GroupMutation, GroupQuery
from chatr.schema.guest_scope import enforce_guest_scope
from chatr.schema.inbox import InboxMutation, InboxQuery
from chatr.schema.media import MediaMutation
from chatr.schema.message_changes import MessageChangeMutation, MessageChangeQuery
from chatr.schema.message_requests import MessageRequestMutation, MessageRequestQuery
from chatr.schema.messages import MessageMutation
from chatr.schema.node import NodeQuery
from chatr.schema.presence import PresenceMutation, PresenceSubscription
from chatr.schema.profiles import ProfileMutation, ProfileQuery
from chatr.schema.receipts import ReceiptMutation
from chatr.schema.social import SocialMutation, SocialQuery, SocialSubscription
from chatr.schema.streams import StreamSubscription
from chatr.schema.validation import HintlessExecutionContext, validation_extension
from chatr.schema.verification import VerificationMutation
from chatr.settings import Settings


class CachedNameConverter(NameConverter):
    """strawberry's NameConverter, remembering each Python name's GraphQL spelling.

    strawberry converts an input object's arguments on every call, and spells every field's
    name afresh each time (`to_camel_case`, a regex per field): on a send that was a visible
    share of the argument conversion. The spelling depends only on the name and
    `auto_camel_case`, which is fixed once the config is built.
    """

    def __init__(self, auto_camel_case: bool = True) -> None:
        super().__init__(auto_camel_case)
        self._spelled: dict[tuple[bool, str], str] = {}

    def apply_naming_config(self, name: str) -> str:
        key = (self.auto_camel_case, name)
        spelled = self._spelled.get(key)
        if spelled is None:
            spelled = self._spelled[key] = super().apply_naming_config(name)
        return spelled


class ChatrSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ChatrErrors logs the unexpected ones; client mistakes are not server errors.
        return None


#: The root types are composed here from one class per domain (strawberry's `merge_types`);
#: a new domain adds its classes to these tuples, whose order is the order of the root fields
#: in the exported schema.
QUERIES: tuple[type, ...] = (
    AuthQuery,
    ConversationQuery,
    MessageRequestQuery,
    SocialQuery,
    ProfileQuery,
    AdminQuery,
    GroupQuery,
    InboxQuery,
    MessageChangeQuery,
    NodeQuery,
)
MUTATIONS: tuple[type, ...] = (
    AuthMutation,
    MessageMutation,
    ReceiptMutation,
    MessageRequestMutation,
    SocialMutation,
    ProfileMutation,
    PresenceMutation,
    VerificationMutation,
    AdminMutation,
    GroupMutation,
    InboxMutation,
    MessageChangeMutation,
    MediaMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (StreamSubscription, SocialSubscription, PresenceSubscription)


def build_schema(settings: Settings) -> strawberry.Schema:
    """The Schema with the request limits of `settings`: parse (tokens), validation (see
    chatr.schema.validation) and, in production, no introspection and no hints."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        ChatrErrors,
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        validation_extension(settings),
    ]
    schema = ChatrSchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS),
        types=[*EVENT_TYPES, ErrorCodeEnum],
        extensions=extensions,
        config=StrawberryConfig(
            disable_field_suggestions=settings.is_production,
            name_converter=CachedNameConverter(),
        ),
        execution_context_class=HintlessExecutionContext if settings.is_production else None,
    )
    enforce_guest_scope(schema._schema)
    argument_plans.install()
    return schema


def export_sdl(settings: Settings | None = None) -> str:
    """The SDL committed as schema.graphql (development settings: the full public API)."""
    return build_schema(settings or Settings()).as_str() + "\n"
