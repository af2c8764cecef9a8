"""Per-request DataLoaders: one `WHERE id IN (...)` per batch, results in key order.

They batch the services' reads for one request or connection and the context (chatr.context)
holds them, so they sit with the context, below the resolvers that use them.

On a WebSocket the context lives as long as the connection, so its loaders batch but never
cache: a cached row would go stale across hours of events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import suppress
from functools import cached_property
from typing import TypeVar

from strawberry.dataloader import DataLoader

from chatr.infra.presence_store import Status
from chatr.models import (
    Attachment,
    Conversation,
    Membership,
    MembershipState,
    Message,
    MessageRevision,
    User,
)
from chatr.runtime import Runtime
from chatr.services import (
    attachments,
    conversations,
    mentions,
    message_changes,
    message_visibility,
    messages,
    presence,
    privacy,
    reactions,
    stars,
    users,
)
from chatr.services.privacy import Standing
from chatr.services.reactions import ReactionSummary

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose callers may be cancelled without cancelling each other.

    Two fields of one document may load the same key and await the same future. graphql-core
    cancels the sibling fields of one that fails (gather_with_cancel), and a task cancelled
    while awaiting a bare future cancels that future: the other field, which nobody
    cancelled, then died of a CancelledError that ended the whole execution (seen as an
    intermittent failure of the shared-render test). Each caller awaits a shield instead.
    """

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


def _in_key_order(keys: Sequence[K], rows: Sequence[V], key_of: Callable[[V], K]) -> list[V | None]:
    by_key = {key_of(row): row for row in rows}
    return [by_key.get(key) for key in keys]


def _by_first(keys: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    """Pairs grouped by their first element (a viewer), in key order."""
    grouped: dict[int, list[int]] = {}
    for first, second in keys:
        grouped.setdefault(first, []).append(second)
    return grouped


class Loaders:
    """Each loader is built on first use: a request uses one or two of them, and building
    all nine (each with its cache and batch state) was a measurable part of a sendMessage."""

    def __init__(self, runtime: Runtime, *, cache: bool) -> None:
        self._rt = runtime
        self._cache = cache

    @cached_property
    def user_by_id(self) -> DataLoader[int, User | None]:
        return SharedLoader(self._users, cache=self._cache)

    @cached_property
    def conversation_by_id(self) -> DataLoader[int, Conversation | None]:
        return SharedLoader(self._conversations, cache=self._cache)

    @cached_property
    def message_by_id(self) -> DataLoader[int, Message | None]:
        return SharedLoader(self._messages, cache=self._cache)

    @cached_property
    def message_by_conversation_seq(self) -> DataLoader[tuple[int, int], Message | None]:
        return SharedLoader(self._messages_by_seq, cache=self._cache)

    @cached_property
    def membership(self) -> DataLoader[tuple[int, int], Membership | None]:
        """Keyed by (conversation_id, user_id)."""
        return SharedLoader(self._memberships, cache=self._cache)

    @cached_property
    def members_by_conversation(self) -> DataLoader[int, list[Membership]]:
        return SharedLoader(self._members, cache=self._cache)

    @cached_property
    def presence(self) -> DataLoader[int, Status]:
        return SharedLoader(self._presence, cache=self._cache)

    @cached_property
    def standing(self) -> DataLoader[tuple[int, int], Standing]:
        """Keyed by (viewer_id, user_id): where the viewer stands with each person."""
        return SharedLoader(self._standings, cache=self._cache)

    def forget_standing(self, viewer_id: int, user_id: int) -> None:
        """Drop what this request read of where the viewer stands with `user_id`: a mutation
        that just changed it answers with what holds now."""
        if "standing" in self.__dict__:  # not built: nothing read yet
            with suppress(KeyError):  # built, but this pair was not read
                self.standing.clear((viewer_id, user_id))

    @cached_property
    def invitees_by_conversation(self) -> DataLoader[int, list[Membership]]:
        return SharedLoader(self._invitees, cache=self._cache)

    # What hangs off a message: one query per page of messages each.
    @cached_property
    def reactions_by_message(self) -> DataLoader[int, list[ReactionSummary]]:
        return SharedLoader(self._reactions, cache=self._cache)

    @cached_property
    def mentions_by_message(self) -> DataLoader[int, list[int]]:
        return SharedLoader(self._mentions, cache=self._cache)

    @cached_property
    def revisions_by_message(self) -> DataLoader[int, list[MessageRevision]]:
        return SharedLoader(self._revisions, cache=self._cache)

    @cached_property
    def attachments_by_message(self) -> DataLoader[int, list[Attachment]]:
        return SharedLoader(self._attachments, cache=self._cache)

    @cached_property
    def players_by_message(self) -> DataLoader[int, list[int]]:
        return SharedLoader(self._players, cache=self._cache)

    @cached_property
    def starred(self) -> DataLoader[tuple[int, int], bool]:
        """Keyed by (user_id, message_id): whether the user starred it."""
        return SharedLoader(self._starred, cache=self._cache)

    @cached_property
    def unread_not_counted(self) -> DataLoader[tuple[int, int], int]:
        """Keyed by (conversation_id, user_id): unread messages the unread count leaves out
        (hidden by the user, unsent)."""
        return SharedLoader(self._unread_not_counted, cache=self._cache)

    @cached_property
    def unread_mentions(self) -> DataLoader[tuple[int, int], int]:
        """Keyed by (conversation_id, user_id): unread messages mentioning the user."""
        return SharedLoader(self._unread_mentions, cache=self._cache)

    async def _run(self, work: Callable[..., Awaitable[T]], **kwargs: object) -> T:
        async with self._rt.db.reader() as session:
            return await work(session, **kwargs)

    async def _users(self, keys: list[int]) -> list[User | None]:
        rows = await self._run(users.list_by_ids, user_ids=keys)
        return _in_key_order(keys, rows, lambda u: u.id)

    async def _conversations(self, keys: list[int]) -> list[Conversation | None]:
        rows = await self._run(conversations.list_by_ids, conversation_ids=keys)
        return _in_key_order(keys, rows, lambda c: c.id)

    async def _messages(self, keys: list[int]) -> list[Message | None]:
        rows = await self._run(messages.list_by_ids, message_ids=keys)
        return _in_key_order(keys, rows, lambda m: m.id)

    async def _messages_by_seq(self, keys: list[tuple[int, int]]) -> list[Message | None]:
        rows = await self._run(messages.list_by_conversation_seq, keys=keys)
        return _in_key_order(keys, rows, lambda m: (m.conversation_id, m.seq))

    async def _memberships(self, keys: list[tuple[int, int]]) -> list[Membership | None]:
        found: list[Membership] = []
        by_user: dict[int, list[int]] = {}
        for conversation_id, user_id in keys:
            by_user.setdefault(user_id, []).append(conversation_id)
        for user_id, conversation_ids in by_user.items():
            found += await self._run(
                conversations.memberships_for_user,
                user_id=user_id,
                conversation_ids=conversation_ids,
            )
        return _in_key_order(keys, found, lambda m: (m.conversation_id, m.user_id))

    async def _members(self, keys: list[int]) -> list[list[Membership]]:
        rows = await self._run(conversations.members_of, conversation_ids=keys)
        return self._grouped(keys, rows)

    async def _invitees(self, keys: list[int]) -> list[list[Membership]]:
        rows = await self._run(
            conversations.members_of,
            conversation_ids=keys,
            state=MembershipState.PENDING,
        )
        return self._grouped(keys, rows)

    @staticmethod
    def _grouped(keys: list[int], rows: list[Membership]) -> list[list[Membership]]:
        grouped: dict[int, list[Membership]] = {key: [] for key in keys}
        for row in rows:
            grouped[row.conversation_id].append(row)
        return [grouped[key] for key in keys]

    async def _standings(self, keys: list[tuple[int, int]]) -> list[Standing]:
        found = await self._run(
            privacy.standings_between,
            viewer_ids={viewer_id for viewer_id, _ in keys},
            user_ids={user_id for _, user_id in keys},
        )
        return [found[key] for key in keys]

    async def _reactions(self, keys: list[int]) -> list[list[ReactionSummary]]:
        found = await self._run(reactions.summaries, message_ids=keys)
        return [found.get(key, []) for key in keys]

    async def _mentions(self, keys: list[int]) -> list[list[int]]:
        found = await self._run(mentions.by_message, message_ids=keys)
        return [found.get(key, []) for key in keys]

    async def _revisions(self, keys: list[int]) -> list[list[MessageRevision]]:
        found = await self._run(message_changes.revisions_by_message, message_ids=keys)
        return [found.get(key, []) for key in keys]

    async def _attachments(self, keys: list[int]) -> list[list[Attachment]]:
        found = await self._run(attachments.by_message, message_ids=keys)
        return [found.get(key, []) for key in keys]

    async def _players(self, keys: list[int]) -> list[list[int]]:
        found = await self._run(attachments.players_by_message, message_ids=keys)
        return [found.get(key, []) for key in keys]

    async def _starred(self, keys: list[tuple[int, int]]) -> list[bool]:
        starred: set[tuple[int, int]] = set()
        for user_id, message_ids in _by_first(keys).items():
            found = await self._run(stars.starred_ids, user_id=user_id, message_ids=message_ids)
            starred.update((user_id, message_id) for message_id in found)
        return [key in starred for key in keys]

    async def _per_user_counts(
        self, keys: list[tuple[int, int]], count: Callable[..., Awaitable[dict[int, int]]]
    ) -> list[int]:
        found: dict[tuple[int, int], int] = {}
        for user_id, conversation_ids in _by_first([(u, c) for c, u in keys]).items():
            counts = await self._run(count, user_id=user_id, conversation_ids=conversation_ids)
            found.update(((c, user_id), n) for c, n in counts.items())
        return [found.get(key, 0) for key in keys]

    async def _unread_not_counted(self, keys: list[tuple[int, int]]) -> list[int]:
        return await self._per_user_counts(keys, message_visibility.unread_not_counted)

    async def _unread_mentions(self, keys: list[tuple[int, int]]) -> list[int]:
        return await self._per_user_counts(keys, mentions.unread_counts)

    async def _presence(self, keys: list[int]) -> list[Status]:
        found = await presence.statuses(self._rt, keys)
        return [found[key] for key in keys]
