"""Schemathesis generates calls of every query and mutation; none may be an internal error.

The API describes itself (introspection through the app, as a client sees it) and schemathesis
generates, for each root field, EXAMPLES_PER_FIELD documents: arguments of every shape the
schema allows (null where allowed, NUL bytes and any other Unicode, huge and negative numbers,
optional input fields left out) under generated selection sets. Each goes to the in-process app
(the suite's `app` fixture: PostgreSQL + Redis) signed in as alice, a registered user with things
to hit: a conversation with her friend bob, a message request, a friend request, a block, a
group she owns and an invitation to another, a second signed-in device. Three in four of the
generated IDs are ids of these (users, conversations, sessions) of the kinds the field takes
(an ID argument takes only a global id of its own type), so calls reach real rows and not only
NOT_FOUND or BAD_USER_INPUT.

A call fails the test if the answer is an HTTP 5xx, or any of its errors is
INTERNAL_SERVER_ERROR or has no `extensions.code`; every other code (FORBIDDEN, NOT_FOUND,
BAD_USER_INPUT, CONFLICT, RATE_LIMITED...) is a proper answer to a generated call.
Schemathesis's own `not_a_server_error` check is not used: it takes any error with a `path` and
a code it does not know for a server error, which would flag every FORBIDDEN and NOT_FOUND. All
problems are collected (the first few per field, each with the document and the traceback the
server logged) and reported together. Hypothesis runs derandomized with no example database, so
every run of the same code sends the same calls, and does not shrink: the app's state moves
under the calls, so a replay might not fail again.

The run is split in SHARDS + 1 tests, so that parallel workers (`./scripts/test` runs
pytest-xdist) share it out and no single test comes near its timeout on a loaded machine: shard
k of SHARDS calls every SHARDS-th of the other fields (sorted by name, so every field lands in
exactly one shard whatever the schema adds), and one more calls ADMIN_FIELDS. Each builds its
own world. EXAMPLES_PER_FIELD was 30 in one test (~2,000 calls, ~115 s of the 120 s timeout
with the machine loaded); it is 20 now, still derandomized (the same calls every run). Every
field is still called, signed in, with generated arguments and selections, a share of them on
the world's ids; what fewer examples give up is some of the rarer argument combinations per
field, a trade for a suite that stays fast as the schema grows. The longest of these tests is
now about a fifth of the run.

Generated mutations change alice's world as they go (she may leave her group, unfriend bob,
decline the request): that is intended, and the suite truncates every table after the test.
No field is left out:

- `logout`, `revokeSession` (her session ids are among the generated ids) and
  `resetPassword` can end alice's session. Before every call the test checks her token the
  way the server does and, once her session has ended, signs her in again through the service
  layer (a new session of the same account, whatever her password or second factor is by
  then), so every call is made signed in.
- The administrators-only fields (ADMIN_FIELDS) are called by an administrator, in a test of
  their own (the `admin` shard, with its own world): they really suspend and delete accounts
  (alice's too, possibly), and no call of another shard sees that.
- Rate limits are off (the `app` fixture's settings): with them on, `register` and `login`
  would answer RATE_LIMITED after five and ten calls and the rest of their calls would never
  reach the resolvers. tests/api/test_rate_limits.py covers the limits.
- Subscriptions are not generated: schemathesis generates queries and mutations only, and
  subscriptions travel over WebSockets (tests/realtime and the authorization matrix cover them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import graphql
import httpx
import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from chatr import security
from chatr.errors import Unauthenticated
from chatr.services import accounts, admin, auth
from tests.groups.helpers import group_with
from tests.support.api import (
    ACCEPT_FRIEND_REQUEST,
    BLOCK_USER,
    LOGIN,
    PASSWORD,
    SEND_FRIEND_REQUEST,
    Account,
    data,
    register,
)
from tests.support.ids import Kind, kind_of, pk
from tests.support.servers import RunningApp

#: Generated calls per root field: ~65 fields, ~1,300 calls in all.
EXAMPLES_PER_FIELD = 20
#: The fields other than ADMIN_FIELDS are called in this many tests (see the docstring).
SHARDS = 4
#: Administrators-only root fields: called by an administrator, after all the others.
ADMIN_FIELDS = ("users", "suspendUser", "unsuspendUser", "deleteUser")
#: The fields that check credentials passed as arguments: UNAUTHENTICATED is their answer to
#: generated ones. Any other field saying so would mean the calls were not signed in.
CREDENTIAL_FIELDS = frozenset(
    {"login", "refreshToken", "verifyTwoFactorLogin", "resendTwoFactorLoginCode"}
)
#: Fields that take the world's conversations away: each shard calls them after its others.
DESTRUCTIVE_PREFIXES = ("delete", "leave")
#: Problems shown per field (the rest are counted).
SHOWN_PER_FIELD = 3
ENDPOINT = "http://chatr.test/graphql"
SESSIONS = "query { mySessions { id } }"


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`register`, `login` and `resetPassword` are called ~60 times: at its defaults argon2
    takes ~0.1 s a hash (~1 s on a loaded machine). Whether a call errors does not depend on
    it. The dummy hash that a login of an unknown user is checked against (so that it takes
    as long as a known one) is cheap too: its cost is read from the hash itself."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024)
    monkeypatch.setattr(security, "_hasher", cheap)
    monkeypatch.setattr(security, "_DUMMY_HASH", cheap.hash("not-a-real-password-for-timing"))


# -- the world --------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    alice: Account  # calls every field but ADMIN_FIELDS
    root: Account  # an administrator: calls ADMIN_FIELDS
    #: Every id in the world: users, conversations, sessions. They are small integers, so
    #: each may also hit a row of another kind.
    ids: tuple[str, ...]


async def _administrator(app: RunningApp) -> Account:
    await admin.create_admin(app.runtime, username="root", password=PASSWORD)
    login = {"input": {"login": "root", "password": PASSWORD}}
    payload = (await data(app.http, LOGIN, login))["login"]
    return Account(app.http, payload["user"]["id"], "root", payload["accessToken"], "")


async def _build_world(app: RunningApp) -> World:
    # One at a time, so that every run numbers the rows alike (hypothesis picks ids by index).
    alice, bob, carol, dave, erin = [await register(app.http) for _ in range(5)]
    root = await _administrator(app)
    # Friends with bob, and a conversation with him.
    await alice.call(SEND_FRIEND_REQUEST, u=bob.id)
    await bob.call(ACCEPT_FRIEND_REQUEST, u=alice.id)
    direct = (await bob.send("hi alice", to=alice))["conversationId"]
    await alice.send("hi bob", conversation_id=direct)
    # A friend request from carol, dave blocked, a message request from erin.
    await carol.call(SEND_FRIEND_REQUEST, u=alice.id)
    await alice.call(BLOCK_USER, u=dave.id)
    request = (await erin.send("hello?", to=alice))["conversationId"]
    # Her group (bob an admin, erin a member, carol invited), and bob's, inviting her.
    own_group = await group_with(alice, admins=[bob], members=[erin], pending=[carol])
    await alice.send("welcome", conversation_id=own_group)
    bobs_group = await group_with(bob, members=[carol], pending=[alice])
    # A second device of hers.
    await data(app.http, LOGIN, {"input": {"login": alice.username, "password": PASSWORD}})
    sessions = [s["id"] for s in (await alice.call(SESSIONS))["mySessions"]]
    assert len(sessions) == 2
    people = [a.id for a in (alice, bob, carol, dave, erin, root)]
    ids = (*people, direct, request, own_group, bobs_group, *sessions)
    return World(alice, root, tuple(dict.fromkeys(ids)))


#: The kind of id an ID argument (or input field) takes, by its name; `id` by its field's.
ID_ARGUMENT_KINDS = {
    "conversationId": Kind.CONVERSATION,
    "conversationIds": Kind.CONVERSATION,
    "userId": Kind.USER,
    "userIds": Kind.USER,
    "recipientId": Kind.USER,
    "senderId": Kind.USER,
    "inviteeIds": Kind.USER,
    "messageId": Kind.MESSAGE,
    "replyToId": Kind.MESSAGE,
    "uploadId": Kind.UPLOAD,
    "uploadIds": Kind.UPLOAD,
}
ID_FIELD_KINDS = {
    "conversation": Kind.CONVERSATION,
    "user": Kind.USER,
    "revokeSession": Kind.SESSION,
}


def _kinds_taken(field_name: str, field: graphql.GraphQLField) -> set[Kind]:
    """The kinds of id the field's arguments (and their input objects' fields) take."""
    found: set[Kind] = set()

    def visit(name: str, type_: graphql.GraphQLInputType) -> None:
        named = graphql.get_named_type(type_)
        if isinstance(named, graphql.GraphQLInputObjectType):
            for inner, input_field in named.fields.items():
                visit(inner, input_field.type)
        elif named.name == "ID":
            kind = ID_FIELD_KINDS.get(field_name) if name == "id" else ID_ARGUMENT_KINDS.get(name)
            found.update([kind] if kind else [])

    for name, argument in field.args.items():
        visit(name, argument.type)
    return found


def _id_literals(world: World, kinds: set[Kind]) -> st.SearchStrategy[graphql.ValueNode]:
    """ID literals for a field taking ids of `kinds`: three in four the world's ids of those
    kinds (an ID argument takes only its own kind's), the rest any of the world's ids, their
    keys as integer literals (which are no ids) and anything schemathesis would send."""
    fitting = [value for value in world.ids if kind_of(value) in kinds] or list(world.ids)
    real = st.sampled_from(fitting).map(nodes.String)
    other = st.one_of(
        st.sampled_from(world.ids).map(nodes.String),
        st.sampled_from(world.ids).map(pk).map(nodes.Int),
        st.text().map(nodes.String),
        st.integers(min_value=-(2**31), max_value=2**31 - 1).map(nodes.Int),
    )
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: other if n == 3 else real)


# -- calling ------------------------------------------------------------------------------


class _ServerLog(logging.Handler):
    """What chatr logs as errors: the traceback behind an INTERNAL_SERVER_ERROR."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def drain(self) -> str:
        text = "\n".join(self.format(record) for record in self.records)
        self.records.clear()
        return text


@pytest.fixture
def server_log() -> Iterator[_ServerLog]:
    handler = _ServerLog()
    logger = logging.getLogger("chatr")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _codes(response: httpx.Response) -> set[str | None]:
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = (body.get("errors") or []) if isinstance(body, dict) else []
    return {(error.get("extensions") or {}).get("code") for error in errors}


def _problems(response: httpx.Response) -> list[str]:
    """What makes an answer wrong, whatever the call."""
    if response.status_code >= 500:
        return [f"HTTP {response.status_code}: {response.text[:500]}"]
    try:
        response.json()
    except ValueError:
        return [f"HTTP {response.status_code}, not JSON: {response.text[:500]}"]
    codes = _codes(response)
    found = ["INTERNAL_SERVER_ERROR"] if "INTERNAL_SERVER_ERROR" in codes else []
    if None in codes:
        found.append(f"an error without extensions.code: {response.text[:500]}")
    return found


@dataclass
class Fuzzer:
    app: RunningApp
    loop: asyncio.AbstractEventLoop
    server_log: _ServerLog
    #: field -> the problems found (shown ones as text, further ones as "").
    problems: dict[str, list[str]] = field(default_factory=dict)
    #: (field, code or "OK") -> how many answers had it.
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    signed_in_again: int = 0

    async def _live_token(self, account: Account) -> str:
        """The account's access token, from a new session if its session has ended."""
        rt = self.app.runtime
        try:
            await auth.viewer_from_token(rt, token=account.token)
        except Unauthenticated:
            user = await accounts.require(rt, pk(account.id))
            issued = await auth.start_session(rt, user=user, device_label="schemathesis")
            account.token = issued.access_token
            self.signed_in_again += 1
        return account.token

    async def _send(self, case: schemathesis.Case, account: Account) -> httpx.Response:
        token = await self._live_token(account)
        request = case.as_transport_kwargs(
            base_url=ENDPOINT, headers={"Authorization": f"Bearer {token}"}
        )
        return await self.app.http.request(
            request["method"], request["url"], json=request["json"], headers=request["headers"]
        )

    def run(self, operation: schemathesis.APIOperation, account: Account) -> None:
        """EXAMPLES_PER_FIELD generated calls of one root field. Runs in a worker thread
        (hypothesis is synchronous); the calls run on the test's event loop, with the app."""
        name = operation.label.split(".", 1)[1]

        @settings(
            max_examples=EXAMPLES_PER_FIELD,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
                HealthCheck.large_base_example,
            ],
            print_blob=False,
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            self.server_log.drain()
            future = asyncio.run_coroutine_threadsafe(self._send(case, account), self.loop)
            response = future.result(timeout=30)
            for code in _codes(response) or {"OK"}:
                self.answers[name, str(code)] += 1
            found = _problems(response)
            if not found:
                return
            shown = self.problems.setdefault(name, [])
            if len(shown) >= SHOWN_PER_FIELD:
                shown.append("")
                return
            shown.append(
                f"{name}, called by {account.username}: {'; '.join(found)}\n{case.body!r}\n"
                f"{self.server_log.drain() or '(nothing logged)'}"
            )

        call()

    def report(self) -> str:
        lines = []
        for name, found in self.problems.items():
            shown = [text for text in found if text]
            lines += shown
            if len(found) > len(shown):
                lines.append(f"... and {len(found) - len(shown)} more calls of {name}")
        return "\n\n".join(lines)


# -- the test ------------------------------------------------------------------------------


def _shard_fields(names: set[str], shard: str) -> list[str]:
    """The fields `shard` calls: ADMIN_FIELDS, or one SHARDS-th of the others."""
    if shard == "admin":
        return list(ADMIN_FIELDS)
    index = int(shard.split("-")[1]) - 1
    return sorted(names - set(ADMIN_FIELDS))[index::SHARDS]


SHARD_IDS = [f"fields-{k}-of-{SHARDS}" for k in range(1, SHARDS + 1)] + ["admin"]


def test_the_shards_call_every_field_exactly_once() -> None:
    names = {f"field{n}" for n in range(67)} | set(ADMIN_FIELDS)
    called = [name for shard in SHARD_IDS for name in _shard_fields(names, shard)]
    assert sorted(called) == sorted(names)


@pytest.mark.parametrize("shard", SHARD_IDS)
async def test_generated_queries_and_mutations_never_cause_an_internal_error(
    app: RunningApp, server_log: _ServerLog, monkeypatch: pytest.MonkeyPatch, shard: str
) -> None:
    # given alice's world, and the API as it describes itself
    world = await _build_world(app)
    introspection = await data(app.http, graphql.get_introspection_query())
    # A file travels only in a multipart request; over JSON an Upload is whatever string
    # a client puts there, which must be a coded refusal too.
    monkeypatch.setitem(CUSTOM_SCALARS, "Upload", st.text().map(nodes.String))
    schema = schemathesis.graphql.from_dict(introspection, config=schemathesis.Config())
    fields = {
        operation.label.split(".", 1)[1]: operation
        for root in ("Query", "Mutation")
        for operation in schema[root].values()
    }
    assert set(ADMIN_FIELDS) <= fields.keys(), "an administrators-only field was renamed"
    called = _shard_fields(set(fields), shard)
    caller = world.root if shard == "admin" else world.alice
    fuzzer = Fuzzer(app, asyncio.get_running_loop(), server_log)

    # when schemathesis calls each of the shard's fields EXAMPLES_PER_FIELD times, the ones
    # that delete or leave conversations last (run first, they empty the world the others'
    # ids point into, whichever fields the sharding puts next to them)
    def call_every_field() -> None:
        for name in sorted(called, key=lambda name: name.startswith(DESTRUCTIVE_PREFIXES)):
            # (what schemathesis.graphql.scalar("ID", ...) would register for good; here per
            # field, with ids of the kinds it takes)
            kinds = _kinds_taken(name, fields[name].definition.raw)
            monkeypatch.setitem(CUSTOM_SCALARS, "ID", _id_literals(world, kinds))
            fuzzer.run(fields[name], caller)

    await asyncio.to_thread(call_every_field)

    # then no answer was a 5xx, an internal error or an error without a code
    if fuzzer.problems:
        pytest.fail(fuzzer.report(), pytrace=False)
    # and the calls meant something: every field was called, signed in, and a good share of
    # the fields (those with ids: on real rows) did what was asked at least once
    assert {name for name, _ in fuzzer.answers} == set(called)
    refused = {name for name, code in fuzzer.answers if code == "UNAUTHENTICATED"}
    assert refused <= CREDENTIAL_FIELDS, f"called without a live session: {refused}"
    succeeded = {name for name, code in fuzzer.answers if code == "OK"}
    assert len(succeeded) >= len(called) // 3, f"only {sorted(succeeded)} ever succeeded"
    assert {"conversation", "markRead", "user", "suspendUser"} & set(called) <= succeeded
