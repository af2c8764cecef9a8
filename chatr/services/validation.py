"""Input rules shared by several services."""

from __future__ import annotations

import re
import unicodedata

from chatr.errors import BadUserInput

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_]{3,20}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PASSWORD_SYMBOL = re.compile(r"[^A-Za-z0-9]")
#: E.164: a plus, a country code that does not start with 0, 8-15 digits in all.
PHONE_PATTERN = re.compile(r"^\+[1-9][0-9]{7,14}$")
#: Separators people type inside numbers ("+1 (555) 123-4567"); dropped before checking.
PHONE_SEPARATORS = re.compile(r"[\s().-]")
MAX_MESSAGE_BODY = 10_000
MAX_CLIENT_ID = 64


def storable(value: str) -> bool:
    """Whether text can be kept and compared at all: PostgreSQL text cannot hold NUL, and a
    lone surrogate (JSON lets a client send "\\ud800") cannot even be encoded as UTF-8."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def text(value: str, *, field: str) -> str:
    """`value` unchanged, or BAD_USER_INPUT naming `field` if it is not `storable`. Every
    free-text input that is stored goes through this (lookups match nothing instead)."""
    if not storable(value):
        raise BadUserInput(
            f"{field} contains a character that is not allowed (NUL or a lone surrogate).",
            field=field,
        )
    return value


def username(value: str) -> str:
    value = value.strip()
    if not USERNAME_PATTERN.fullmatch(value):
        raise BadUserInput(
            "Username must be 3-20 characters: letters, digits or underscore.", field="username"
        )
    return value


def email(value: str) -> str:
    value = text(value, field="email").strip()
    if len(value) > 254 or not EMAIL_PATTERN.fullmatch(value):
        raise BadUserInput("Email address is not valid.", field="email")
    return value


def phone(value: str) -> str:
    """The number in E.164 form; separators are dropped so one number has one spelling
    (the uniqueness check depends on it)."""
    value = PHONE_SEPARATORS.sub("", value.strip())
    if not PHONE_PATTERN.fullmatch(value):
        raise BadUserInput(
            "Phone number must be in international format: + and 8-15 digits.", field="phone"
        )
    return value


def password(value: str) -> str:
    text(value, field="password")
    if len(value) < 8 or len(value) > 256:
        raise BadUserInput("Password must be 8-256 characters.", field="password")
    if not any(ch.isupper() for ch in value) or not PASSWORD_SYMBOL.search(value):
        raise BadUserInput(
            "Password needs at least one upper-case letter and one symbol.", field="password"
        )
    return value


def display_name(value: str | None, fallback: str) -> str:
    value = text(value or "", field="displayName").strip() or fallback
    if len(value) > 80:
        raise BadUserInput("Display name is at most 80 characters.", field="displayName")
    return value


#: Words a display name of anyone but staff may not contain: they would pass the person off
#: as chatr's own support or administration to whoever they write to.
RESERVED_NAME_WORDS = frozenset(
    {
        "admin",
        "administrator",
        "administration",
        "chatr",
        "helpdesk",
        "moderator",
        "official",
        "staff",
        "support",
        "system",
    }
)
#: Words that, run together with reserved ones, still read as them ("SupportTeam").
_FILLER_WORDS = frozenset({"the", "team", "desk", "bot", "help", "center", "centre", "service"})
#: Look-alike spellings folded before the check ("Supp0rt", "4dmin", "$taff").
_LOOKALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"})


def _only_reserved_and_filler(text: str) -> bool:
    """Whether `text` splits wholly into reserved and filler words, one reserved at least."""
    vocabulary = RESERVED_NAME_WORDS | _FILLER_WORDS
    # ends[i]: the prefix text[:i] splits into vocabulary words; value: a reserved one used
    ends: dict[int, bool] = {0: False}
    for end in range(1, len(text) + 1):
        for start, reserved in list(ends.items()):
            word = text[start:end]
            if start < end and word in vocabulary:
                ends[end] = ends.get(end, False) or reserved or word in RESERVED_NAME_WORDS
    return ends.get(len(text), False)


def is_reserved_name(value: str) -> bool:
    """Whether a name reads as one of `RESERVED_NAME_WORDS`: as a word of it ("Ada from
    Support"), or spelt across separators or run together ("S.u.p.p.o.r.t", "SupportTeam")."""
    folded = "".join(
        ch for ch in unicodedata.normalize("NFKC", value) if unicodedata.category(ch) != "Cf"
    )
    words = re.findall(r"[^\W_]+", folded.casefold().translate(_LOOKALIKES))
    if any(word in RESERVED_NAME_WORDS for word in words):
        return True
    return _only_reserved_and_filler("".join(words))


def not_reserved(value: str, *, field: str = "displayName") -> str:
    """`value`, or BAD_USER_INPUT when it is reserved for staff (`is_reserved_name`)."""
    if is_reserved_name(value):
        raise BadUserInput(
            "That name is reserved for chatr's own staff; choose another.", field=field
        )
    return value


def message_body(value: str) -> str:
    text(value, field="body")
    if not value or not value.strip():
        raise BadUserInput("Message body must not be empty.", field="body")
    if len(value) > MAX_MESSAGE_BODY:
        raise BadUserInput(f"Message body is at most {MAX_MESSAGE_BODY} characters.", field="body")
    return value


def client_id(value: str) -> str:
    value = text(value, field="clientMessageId").strip()
    if not value or len(value) > MAX_CLIENT_ID:
        raise BadUserInput(
            f"clientMessageId must be 1-{MAX_CLIENT_ID} characters.", field="clientMessageId"
        )
    return value
