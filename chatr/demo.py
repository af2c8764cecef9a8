"""`chatr demo`: a handful of people with friends, a DM, a message request and a group with
history, so that someone opening GraphiQL has something to look at within seconds.

Everything is made through the public GraphQL API (in process, no socket), the way a client
would make it; the one shortcut is the email verification code, which the demo issues itself
instead of reading it from the development log, so that `searchUsers` finds the people.

Idempotent: a re-run signs the people in instead of registering them, asks for nothing that
already exists (friendships, the group, invitations) and re-sends messages under the same
`clientMessageId`, which returns the original. So it can run before every `chatr demo` serve.

Extending it: each seed step is a function in `STEPS`, taking the `Demo` (its signed-in
people and what earlier steps made) and making one kind of thing idempotently. Features that
do not exist yet (reactions, an assistant conversation) add a step there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from chatr import global_ids
from chatr.app import create_app
from chatr.global_ids import Kind
from chatr.runtime import Runtime
from chatr.services import email_verification, verification
from chatr.settings import Settings

#: Every demo account's password (it follows the password rule: 8+ characters, an upper-case
#: letter and a symbol).
PASSWORD = "Demo-pass-1"

#: username, display name.
PEOPLE = (
    ("demo_alice", "Alice Liddell"),
    ("demo_bob", "Bob Marley"),
    ("demo_carol", "Carol Danvers"),
    ("demo_dave", "Dave Bowman"),
    ("demo_erin", "Erin Brockovich"),
)
GROUP_NAME = "Book club"


class DemoError(Exception):
    """The demo cannot be seeded as asked (e.g. a demo username taken with another password)."""


@dataclass
class Person:
    username: str
    display_name: str
    id: str
    token: str

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


@dataclass
class Demo:
    """The signed-in people and what the steps made, for later steps and the summary."""

    http: httpx.AsyncClient
    runtime: Runtime
    people: dict[str, Person] = field(default_factory=dict)
    #: name -> conversation id.
    conversations: dict[str, str] = field(default_factory=dict)
    #: What each step did, for the summary ("created" / "already there").
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, short_name: str) -> Person:
        return self.people[f"demo_{short_name}"]

    async def call(
        self, document: str, token: str | None = None, **variables: Any
    ) -> dict[str, Any]:
        """Run `document` as the holder of `token`; DemoError with the API's message if it
        answers with errors."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": document, "variables": variables}, headers=headers
        )
        body = response.json()
        if body.get("errors"):
            raise DemoError("; ".join(error["message"] for error in body["errors"]))
        data: dict[str, Any] = body["data"]
        return data


Step = Callable[[Demo], Awaitable[None]]

_REGISTER = """
mutation ($input: RegisterInput!) { register(input: $input) { accessToken user { id } } }
"""
_LOGIN = """
mutation ($input: LoginInput!) { login(input: $input) { accessToken user { id } } }
"""
_RELATION = "query ($q: String!) { searchUsers(query: $q) { user { username } relation } }"
_ASK = "mutation ($u: ID!) { sendFriendRequest(userId: $u) { state } }"
_ACCEPT = "mutation ($u: ID!) { acceptFriendRequest(userId: $u) { state } }"
_SEND = """
mutation ($input: SendMessageInput!) { sendMessage(input: $input) { seq conversationId } }
"""
_MARK_READ = (
    "mutation ($c: ID!, $s: Int!) { markRead(conversationId: $c, upToSeq: $s) { lastReadSeq } }"
)
_GROUPS = """
query { conversations(first: 100) { edges { node { id kind name myRole } } } }
"""
_CREATE_GROUP = """
mutation ($input: CreateGroupInput!) { createGroup(input: $input) { id } }
"""
_INVITES = "query { myGroupInvites { conversationId } }"
_ACCEPT_INVITE = "mutation ($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }"


async def _people(demo: Demo) -> None:
    """Sign each person in, registering (and verifying the email of) those not there yet."""
    registered = 0
    for username, display_name in PEOPLE:
        try:
            signed_in = (await demo.call(_LOGIN, input={"login": username, "password": PASSWORD}))[
                "login"
            ]
        except DemoError:
            try:
                signed_in = (
                    await demo.call(
                        _REGISTER,
                        input={
                            "username": username,
                            "password": PASSWORD,
                            "email": f"{username}@example.com",
                            "displayName": display_name,
                        },
                    )
                )["register"]
            except DemoError as error:
                raise DemoError(
                    f"cannot sign in or register {username} ({error}); it may exist with "
                    "another password: use a fresh CHATR_DATA_DIR or database"
                ) from error
            await _verify_email(demo.runtime, global_ids.decode(signed_in["user"]["id"], Kind.USER))
            registered += 1
        person = Person(username, display_name, signed_in["user"]["id"], signed_in["accessToken"])
        demo.people[username] = person
    demo.notes.append(f"people: {registered} registered, {len(PEOPLE) - registered} existed")


async def _verify_email(runtime: Runtime, user_id: int) -> None:
    """What a person does with the mailed code, with a code the demo issues itself."""
    code = await verification.issue(
        runtime, user_id=user_id, purpose=verification.EMAIL_VERIFICATION
    )
    await email_verification.verify(runtime, viewer_id=user_id, code=code)


async def _relation(demo: Demo, viewer: Person, other: Person) -> str:
    matches = (await demo.call(_RELATION, viewer.token, q=other.username))["searchUsers"]
    for match in matches:
        if match["user"]["username"] == other.username:
            return str(match["relation"])
    raise DemoError(f"{viewer.username} cannot find {other.username}")


async def _friends(demo: Demo) -> None:
    """alice-bob, alice-carol and bob-carol are friends; dave's request to alice waits."""
    made = 0
    for asker, answerer, accept in (
        ("alice", "bob", True),
        ("alice", "carol", True),
        ("bob", "carol", True),
        ("dave", "alice", False),
    ):
        a, b = demo[asker], demo[answerer]
        relation = await _relation(demo, a, b)
        if relation == "NONE":
            await demo.call(_ASK, a.token, u=b.id)
            relation = "REQUEST_SENT"
            made += 1
        if accept and relation == "REQUEST_SENT":
            await demo.call(_ACCEPT, b.token, u=a.id)
    demo.notes.append(f"friend requests: {made} sent")


async def _send_all(
    demo: Demo, key: str, lines: list[tuple[str, str]], *, to: Person | None = None
) -> tuple[str, int]:
    """Send `lines` ((sender, body), in order) under keys `key-1`, `key-2`…; the first to
    `to` (a DM), the rest into the conversation it made. The conversation id and last seq."""
    conversation_id = demo.conversations.get(key)
    seq = 0
    for number, (sender, body) in enumerate(lines, start=1):
        if conversation_id is not None:
            target = {"conversationId": conversation_id}
        elif to is not None:
            target = {"recipientId": to.id}
        else:
            raise DemoError(f"{key}: no conversation and no recipient")
        sent = (
            await demo.call(
                _SEND,
                demo[sender].token,
                input={"body": body, "clientMessageId": f"demo-{key}-{number}", **target},
            )
        )["sendMessage"]
        conversation_id, seq = sent["conversationId"], sent["seq"]
        demo.conversations[key] = conversation_id
    assert conversation_id is not None
    return conversation_id, seq


async def _direct_messages(demo: Demo) -> None:
    """A DM between alice and bob (read up to the end by bob), and a message request from
    erin (no friend of alice's) that waits in alice's `messageRequests`."""
    dm, last = await _send_all(
        demo,
        "dm",
        [
            ("alice", "Hi Bob! Did you finish the book?"),
            ("bob", "Almost, two chapters left."),
            ("alice", "No spoilers then. Club meets Thursday."),
            ("bob", "I'll be there. Bringing snacks."),
            ("alice", "Perfect 🍪"),
        ],
        to=demo["bob"],
    )
    await demo.call(_MARK_READ, demo["bob"].token, c=dm, s=last)
    await _send_all(
        demo,
        "request",
        [("erin", "Hello Alice, Carol said you run a book club. Can I join?")],
        to=demo["alice"],
    )
    demo.notes.append("direct messages: alice-bob (5), erin's message request to alice")


async def _group(demo: Demo) -> None:
    """alice's "Book club" with bob and carol (joined) and dave (invited), and a chat."""
    alice = demo["alice"]
    edges = (await demo.call(_GROUPS, alice.token))["conversations"]["edges"]
    existing = [
        edge["node"]["id"]
        for edge in edges
        if edge["node"]["kind"] == "GROUP"
        and edge["node"]["name"] == GROUP_NAME
        and edge["node"]["myRole"] == "OWNER"
    ]
    if existing:
        group_id = existing[0]
    else:
        invitees = [demo[name].id for name in ("bob", "carol", "dave")]
        group_id = (
            await demo.call(
                _CREATE_GROUP,
                alice.token,
                input={
                    "name": GROUP_NAME,
                    "description": "One book a month, Thursdays.",
                    "inviteeIds": invitees,
                },
            )
        )["createGroup"]["id"]
    for name in ("bob", "carol"):
        invites = (await demo.call(_INVITES, demo[name].token))["myGroupInvites"]
        if any(invite["conversationId"] == group_id for invite in invites):
            await demo.call(_ACCEPT_INVITE, demo[name].token, c=group_id)
    demo.conversations["group"] = group_id
    await _send_all(
        demo,
        "group",
        [
            ("alice", "Welcome to the book club! This month: The Left Hand of Darkness."),
            ("carol", "Great pick. I'm halfway through."),
            ("bob", "Just started. The winter sounds brutal."),
            ("alice", "Thursday 7pm at mine. Dave is invited too."),
            ("carol", "I'll bring tea."),
            ("bob", "Snacks covered 🍿"),
        ],
    )
    demo.notes.append(
        f"group {GROUP_NAME!r}: " + ("already there" if existing else "created") + ", 6 messages"
    )


#: The seed, in order; each step is idempotent (see the module docstring to add one).
STEPS: tuple[Step, ...] = (_people, _friends, _direct_messages, _group)


async def seed(settings: Settings) -> Demo:
    """Run every step against an app built from `settings` (migrated beforehand)."""
    app = create_app(settings)
    with _quiet("httpx", "chatr.mail"):
        return await _seed(app)


async def _seed(app: Starlette) -> Demo:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
            demo = Demo(http=http, runtime=app.state.runtime)
            for step in STEPS:
                await step(demo)
    return demo


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Leave out a line per in-process request and the verification mails the demo answers
    itself: the summary is what the terminal should show."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def summary(demo: Demo, url: str | None) -> str:
    """What the demo made and how to sign in, for the terminal."""
    lines = ["", "chatr demo: " + "; ".join(demo.notes), ""]
    lines.append(f"Sign in as any of them (username or email), password {PASSWORD}:")
    width = max(len(person.username) for person in demo.people.values())
    for person in demo.people.values():
        lines.append(f"  {person.username:<{width}}  {person.email:<26}  {person.display_name}")
    lines += [
        "",
        "demo_alice has the most to look at: friends, a DM with bob, a group with history,",
        "a friend request from dave and a message request from erin.",
    ]
    if url:
        lines += [
            "",
            f"GraphiQL: {url}  -- run",
            f'  mutation {{ login(input: {{login: "demo_alice", password: "{PASSWORD}"}}) '
            "{ accessToken } }",
            'and put {"Authorization": "Bearer <accessToken>"} in the Headers tab.',
        ]
    return "\n".join([*lines, ""])
