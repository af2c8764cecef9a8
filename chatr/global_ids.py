"""Global object ids (the Relay spec): one opaque `ID` per object across the whole schema.

An id is the unpadded URL-safe base64 of "Type:pk" ("User:1" is "VXNlcjox"), so a User, a
Conversation and a Message with the same table key never share an id, and a normalized
client cache can key on the id alone. Clients must treat ids as opaque; the encoding is
here only so the server can tell the kind apart from the key.

Every id has exactly one spelling: `decode` accepts only what `encode` produces (no padding,
no whitespace, no standard-base64 characters, no leading zeros or sign in the key), so two
strings never name the same object and an id can be compared as a string. Anything else,
and an id of another kind than the argument expects, is BAD_USER_INPUT naming the argument:
never an internal error, and never a lookup.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Sequence

from chatr.errors import BadUserInput

#: The largest key a row can have (PostgreSQL bigint).
MAX_PK = 2**63 - 1
#: Longer than any id `encode` makes (the longest kind name, ':' and 19 digits, in base64).
MAX_LENGTH = 64
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_KEY = re.compile(r"[1-9][0-9]{0,18}")


class Kind(enum.Enum):
    """What an id names; the value is the GraphQL type the object is shown as (and the text
    inside the id). Every type with an `id: ID!` has its own kind, so `node(id:)` answers with
    the type the id came from: an administrator's `UserAccount` is not the `User` of the
    same person."""

    USER = "User"
    CONVERSATION = "Conversation"
    MESSAGE = "Message"
    SESSION = "Session"
    USER_ACCOUNT = "UserAccount"
    UPLOAD = "UploadTicket"
    ATTACHMENT = "Attachment"
    FRIENDSHIP = "Friendship"
    GROUP_INVITE = "GroupInvite"


_BY_NAME = {kind.value: kind for kind in Kind}


def encode(kind: Kind, pk: int) -> str:
    """The global id of row `pk` shown as `kind`."""
    raw = f"{kind.value}:{pk}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse(value: object) -> tuple[Kind, int] | None:
    """The kind and key of a well-formed global id, or None for anything else (another
    spelling of a valid id included)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LENGTH:
        return None
    if not _ALPHABET.fullmatch(value) or len(value) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, _, key = raw.partition(":")
    kind = _BY_NAME.get(name)
    if kind is None or not _KEY.fullmatch(key):
        return None
    pk = int(key)
    if pk > MAX_PK or encode(kind, pk) != value:  # unused trailing bits: another spelling
        return None
    return kind, pk


def decode_any(value: object, *, field: str = "id") -> tuple[Kind, int]:
    """The kind and key of `value`, a global id of any kind (`node(id:)`); else
    BAD_USER_INPUT naming `field`."""
    parsed = parse(value)
    if parsed is None:
        raise BadUserInput(f"{field} is not a valid id.", field=field)
    return parsed


def decode(value: object, kind: Kind | tuple[Kind, ...], *, field: str = "id") -> int:
    """The key of `value`, which must be a global id of `kind` (or of one of several kinds
    that show the same row, as a `User` and its `UserAccount`); else BAD_USER_INPUT naming
    `field`. Whether such a row exists, and is the viewer's, is the service's to say."""
    parsed = parse(value)
    if parsed is None:
        raise BadUserInput(f"{field} is not a valid id.", field=field)
    found, pk = parsed
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if found not in kinds:
        wanted = " or ".join(k.value for k in kinds)
        raise BadUserInput(f"{field} must be the id of a {wanted}.", field=field)
    return pk


def decode_all(values: Sequence[str], kind: Kind, *, field: str) -> list[int]:
    """`decode` for each of a list argument (`inviteeIds`, `uploadIds`, ...)."""
    return [decode(value, kind, field=field) for value in values]
