"""Adversarial GraphQL documents: the most validation work an anonymous client can ask for.

Each family builds a document from a size `n` and a random source; `largest` grows `n` until
the document would cross the server's parse limits (tokens, body bytes), so every document here
is one the server must at least look at. The random source varies names and field choices so
that no cache (parser, validation) ever hits: an attacker would do the same.

Shared by bench/validation.py (which times them) and tests/security/test_validation_cost.py
(which checks each is refused with a code or validates quickly).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from graphql import GraphQLSyntaxError, Source
from graphql.language.lexer import Lexer
from graphql.language.token_kind import TokenKind

USER_FIELDS = ("id", "username", "displayName", "avatarUrl", "coverUrl", "blocked", "firstName")
Builder = Callable[[int, random.Random], str]


def _tag(rnd: random.Random) -> str:
    return f"{rnd.getrandbits(40):010x}"


def _user_fields(rnd: random.Random, count: int = 2) -> str:
    return " ".join(rnd.sample(USER_FIELDS, count))


def repeated_fields(n: int, rnd: random.Random) -> str:
    """`{ me{a b} me{c d} ... }`: one response name n times, compared pairwise."""
    return (
        f"query Q{_tag(rnd)} {{ "
        + " ".join(f"me {{ {_user_fields(rnd)} }}" for _ in range(n))
        + " }"
    )


def repeated_nested(n: int, rnd: random.Random) -> str:
    """The same root field n times with nested selections: each pair compared level by level."""
    return (
        f"query Q{_tag(rnd)} {{ "
        + " ".join(
            "conversations { edges { node { lastMessage { sender { "
            + _user_fields(rnd, 1)
            + " } } } } }"
            for _ in range(n)
        )
        + " }"
    )


def repeated_with_arguments(n: int, rnd: random.Random) -> str:
    """Repeated fields carrying argument lists that must be compared for every pair."""
    value = f'"{_tag(rnd)}"'
    args = f"first: 1, after: {value}, last: 2, before: {value}"
    return (
        f"query Q{_tag(rnd)} {{ "
        + " ".join(f"conversations({args}) {{ edges {{ cursor }} }}" for _ in range(n))
        + " }"
    )


def conflicting_arguments(n: int, rnd: random.Random) -> str:
    """Repeated fields with differing arguments: every pair is a conflict to report."""
    return (
        f"query Q{_tag(rnd)} {{ "
        + " ".join(f"conversations(first: {i}) {{ edges {{ cursor }} }}" for i in range(n))
        + " }"
    )


def many_fragments(n: int, rnd: random.Random) -> str:
    """n fragments spread side by side: fragment pairs compared with each other."""
    tag = _tag(rnd)
    spreads = " ".join(f"...F{tag}{i}" for i in range(n))
    fragments = " ".join(f"fragment F{tag}{i} on User {{ {_user_fields(rnd)} }}" for i in range(n))
    return f"query Q{tag} {{ me {{ {spreads} }} }} {fragments}"


def repeated_spreads(n: int, rnd: random.Random) -> str:
    """One fragment spread n times, and again under n repeated fields."""
    tag = _tag(rnd)
    spreads = " ".join(f"...F{tag}" for _ in range(n // 2))
    fields = " ".join(f"me {{ ...F{tag} }}" for _ in range(n // 2))
    return (
        f"query Q{tag} {{ me {{ {spreads} }} {fields} }} "
        f"fragment F{tag} on User {{ {' '.join(USER_FIELDS)} }}"
    )


def nested_fragments(n: int, rnd: random.Random) -> str:
    """Fragments that each spread the next one several times: the expansion is exponential."""
    tag = _tag(rnd)
    width = 4
    fragments = [
        f"fragment F{tag}{i} on User {{ {_user_fields(rnd, 1)} "
        + " ".join(f"...F{tag}{i + 1}" for _ in range(width))
        + " }"
        for i in range(n)
    ]
    fragments.append(f"fragment F{tag}{n} on User {{ id }}")
    return f"query Q{tag} {{ me {{ ...F{tag}0 }} }} " + " ".join(fragments)


def fragment_tree(n: int, rnd: random.Random) -> str:
    """Nested fragments under repeated fields, each level with its own nested field."""
    tag = _tag(rnd)
    fragments = [
        f"fragment F{tag}{i} on Query {{ me {{ {_user_fields(rnd, 1)} }} "
        f"...F{tag}{i + 1} ...G{tag}{i + 1} }} "
        f"fragment G{tag}{i} on Query {{ me {{ {_user_fields(rnd, 1)} }} ...F{tag}{i + 1} }}"
        for i in range(n)
    ]
    fragments.append(f"fragment F{tag}{n} on Query {{ me {{ id }} }}")
    fragments.append(f"fragment G{tag}{n} on Query {{ me {{ id }} }}")
    return f"query Q{tag} {{ ...F{tag}0 ...G{tag}0 }} " + " ".join(fragments)


def inline_fragments_on_interface(n: int, rnd: random.Random) -> str:
    """Inline fragments on an interface and its types, compared across exclusive parents."""
    types = ("MessagePostedEvent", "ReceiptUpdatedEvent", "TypingEvent", "ConversationEvent")
    return (
        f"subscription S{_tag(rnd)} {{ myEvents {{ "
        + " ".join(f"... on {rnd.choice(types)} {{ cursor conversationId }}" for _ in range(n))
        + " } }"
    )


def inline_fragments_untyped(n: int, rnd: random.Random) -> str:
    """Inline fragments without a type condition, each repeating the same field."""
    return (
        f"query Q{_tag(rnd)} {{ "
        + " ".join(f"... {{ me {{ {_user_fields(rnd)} }} }}" for _ in range(n))
        + " }"
    )


def directives(n: int, rnd: random.Random) -> str:
    """Repeated fields, each carrying directives with variables."""
    return (
        f"query Q{_tag(rnd)}($yes: Boolean!, $no: Boolean!) {{ "
        + " ".join(
            f"me @include(if: $yes) @skip(if: $no) {{ {_user_fields(rnd, 1)} }}" for _ in range(n)
        )
        + " }"
    )


def many_variables(n: int, rnd: random.Random) -> str:
    """Many variable definitions, each used by its own repeated field."""
    definitions = ", ".join(f"$v{i}: Int" for i in range(n))
    return (
        f"query Q{_tag(rnd)}({definitions}) {{ "
        + " ".join(f"conversations(first: $v{i}) {{ edges {{ cursor }} }}" for i in range(n))
        + " }"
    )


def long_argument_list(n: int, rnd: random.Random) -> str:
    """One list argument with n items, on two fields whose arguments must be compared."""
    ids = ", ".join(str(rnd.randrange(1, 1 << 30)) for _ in range(n // 2))
    field = f"inviteToGroup(conversationId: 1, userIds: [{ids}]) {{ id }}"
    return f"mutation M{_tag(rnd)} {{ {field} {field} }}"


def many_operations(n: int, rnd: random.Random) -> str:
    """Many operations sharing nested fragments that use a variable."""
    tag = _tag(rnd)
    operations = " ".join(f"query Q{tag}{i}($v: Int) {{ ...F{tag}0 }}" for i in range(n))
    fragments = " ".join(
        f"fragment F{tag}{i} on Query {{ conversations(first: $v) {{ edges {{ cursor }} }} "
        f"...F{tag}{i + 1} }}"
        for i in range(8)
    )
    return f"{operations} {fragments} fragment F{tag}8 on Query {{ me {{ id }} }}"


def many_small_operations(n: int, rnd: random.Random) -> str:
    """n tiny operations: each is validated (and its variables traced) on its own."""
    tag = _tag(rnd)
    return " ".join(f"query Q{tag}{i} {{ __typename }}" for i in range(n))


def variables_in_a_list(n: int, rnd: random.Random) -> str:
    """A list argument made of n variables, each defined: every one is checked for its type."""
    definitions = ", ".join(f"$v{i}: ID!" for i in range(n))
    items = ", ".join(f"$v{i}" for i in range(n))
    return (
        f"mutation M{_tag(rnd)}({definitions}) "
        f"{{ inviteToGroup(conversationId: 1, userIds: [{items}]) {{ id }} }}"
    )


def fragment_chain(n: int, rnd: random.Random) -> str:
    """n fragments, each only spreading the next: no field repeats, every fragment is used."""
    tag = _tag(rnd)
    chain = " ".join(f"fragment F{tag}{i} on User {{ ...F{tag}{i + 1} }}" for i in range(n))
    return (
        f"query Q{tag} {{ me {{ ...F{tag}0 }} }} {chain} "
        f"fragment F{tag}{n} on User {{ {_user_fields(rnd, 1)} }}"
    )


CONVERSATION_FIELDS = "id kind status name description avatarUrl coverUrl createdAt lastSeq"
MESSAGE_FIELDS = "id seq kind body createdAt editedAt deletedAt conversationId clientMessageId"


def wide_valid_operations(n: int, rnd: random.Random) -> str:
    """Up to 5 operations (the most a document may define), each selecting distinct fields
    three types deep: valid, and as much for the rules to visit as the limits allow."""
    tag = _tag(rnd)
    users = " ".join(USER_FIELDS)
    body = (
        f"conversations(first: 5) {{ edges {{ cursor node {{ {CONVERSATION_FIELDS} "
        f"lastMessage {{ {MESSAGE_FIELDS} sender {{ {users} }} }} }} }} "
        f"pageInfo {{ hasNextPage endCursor }} }} me {{ {users} }} "
        f"friends(first: 5) {{ edges {{ cursor node {{ user {{ {users} }} }} }} }} "
        f"blockedUsers(first: 5) {{ edges {{ cursor node {{ user {{ {users} }} }} }} }} "
        f"messageRequests(first: 5) {{ edges {{ cursor node {{ {CONVERSATION_FIELDS} }} }} }}"
    )
    return " ".join(f"query Q{tag}{i} {{ {body} }}" for i in range(min(n, 5)))


FAMILIES: dict[str, Builder] = {
    "repeated fields": repeated_fields,
    "repeated nested fields": repeated_nested,
    "repeated fields with arguments": repeated_with_arguments,
    "conflicting arguments": conflicting_arguments,
    "many fragments": many_fragments,
    "repeated fragment spreads": repeated_spreads,
    "nested fragments": nested_fragments,
    "fragment tree": fragment_tree,
    "inline fragments on an interface": inline_fragments_on_interface,
    "untyped inline fragments": inline_fragments_untyped,
    "directives": directives,
    "many variables": many_variables,
    "long argument list": long_argument_list,
    "many operations": many_operations,
    "many small operations": many_small_operations,
    "fragment chain": fragment_chain,
    "variables in a list": variables_in_a_list,
    "wide valid operations": wide_valid_operations,
}


@dataclass(frozen=True)
class Limits:
    max_tokens: int
    max_bytes: int


def token_count(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    try:
        while lexer.advance().kind is not TokenKind.EOF:
            count += 1
    except GraphQLSyntaxError:
        return 1 << 30
    return count


def fits(document: str, limits: Limits) -> bool:
    return len(document.encode()) <= limits.max_bytes and token_count(document) <= limits.max_tokens


def largest(builder: Builder, limits: Limits, seed: int = 0) -> int:
    """The largest n whose document still fits the limits (found by doubling, then bisecting)."""
    low, high = 1, 2
    while fits(builder(high, random.Random(seed)), limits):
        low, high = high, high * 2
        if high > 1 << 12:
            return low
    while high - low > 1:
        middle = (low + high) // 2
        if fits(builder(middle, random.Random(seed)), limits):
            low = middle
        else:
            high = middle
    return low
