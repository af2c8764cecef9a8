"""A support-widget guest session from an attacker's side: it does what the widget needs and
nothing else.

The allow-list is `chatr.services.guests.GUEST_ALLOWED`; every other root field of the API,
found by introspection (so a field added later is covered without touching this file),
answers a guest FORBIDDEN before it does anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from chatr.services import admin
from chatr.services.guests import GUEST_ALLOWED
from tests.support.api import (
    MARK_DELIVERED,
    MARK_READ,
    ME,
    PASSWORD,
    REFRESH,
    SET_PHONE,
    Account,
    GraphQLError,
    data,
    graphql,
    register,
)
from tests.support.servers import RunningApp
from tests.support.ws import CONVERSATION_EVENTS, MY_EVENTS, subscribe

START = """
mutation Start($input: GuestSessionInput!) {
  startGuestSession(input: $input) { accessToken refreshToken user { id displayName } }
}
"""
PROFILE = "query P($id: ID!) { user(id: $id) { id username displayName } }"
SEARCH = "query S($q: String!) { searchUsers(query: $q) { user { id } } }"
RENAME = "mutation R($n: String!) { updateProfile(input: {displayName: $n}) { displayName } }"

#: What the support widget needs, decided here as the specification of GUEST_ALLOWED.
WIDGET_NEEDS = {
    "me",
    "conversations",
    "conversation",
    "sendMessage",
    "editMessage",
    "unsendMessage",
    "reactToMessage",
    "markRead",
    "markDelivered",
    "setTyping",
    "conversationEvents",
    "myEvents",
    "refreshToken",
    "logout",
}

ROOT_FIELDS = """
query RootFields {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types {
      kind
      name
      enumValues { name }
      inputFields { name defaultValue type { ...TypeRef } }
      fields { name type { ...TypeRef } args { name defaultValue type { ...TypeRef } } }
    }
  }
}
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { name } } } }
"""

SCALAR_LITERALS = {
    "ID": '"1"',
    "String": '"x"',
    "Int": "1",
    "Float": "1.5",
    "Boolean": "true",
    "DateTime": '"2026-01-01T00:00:00Z"',
    # A file is only ever a multipart request's; as a literal it is a string, refused first
    # by the guest scope all the same.
    "Upload": '"file"',
}


@dataclass(frozen=True)
class RootField:
    operation: str  # query, mutation or subscription
    name: str
    document: str


class _Schema:
    def __init__(self, introspection: dict[str, Any]) -> None:
        schema = introspection["__schema"]
        self.types = {t["name"]: t for t in schema["types"]}
        self.roots = {
            "query": schema["queryType"]["name"],
            "mutation": schema["mutationType"]["name"],
            "subscription": schema["subscriptionType"]["name"],
        }

    def literal(self, ref: dict[str, Any]) -> str:
        """A valid literal for a type reference (only what validation needs)."""
        kind = ref.get("kind")  # the innermost level of TypeRef names the type only
        if kind == "NON_NULL":
            return self.literal(ref["ofType"])
        if kind == "LIST":
            return f"[{self.literal(ref['ofType'])}]"
        named = self.types[ref["name"]]
        if named["kind"] == "ENUM":
            return str(named["enumValues"][0]["name"])
        if named["kind"] == "INPUT_OBJECT":
            required = [
                f"{f['name']}: {self.literal(f['type'])}"
                for f in named["inputFields"]
                if f["type"]["kind"] == "NON_NULL" and f["defaultValue"] is None
            ]
            return "{" + ", ".join(required) + "}"
        return SCALAR_LITERALS[ref["name"]]

    def selection(self, ref: dict[str, Any]) -> str:
        while ref.get("ofType"):
            ref = ref["ofType"]
        kind = self.types[ref["name"]]["kind"]
        return " { __typename }" if kind in ("OBJECT", "INTERFACE", "UNION") else ""

    def root_fields(self) -> list[RootField]:
        found = []
        for operation, type_name in self.roots.items():
            for field in self.types[type_name]["fields"]:
                arguments = [
                    f"{a['name']}: {self.literal(a['type'])}"
                    for a in field["args"]
                    if a["type"]["kind"] == "NON_NULL" and a["defaultValue"] is None
                ]
                call = field["name"] + (f"({', '.join(arguments)})" if arguments else "")
                document = f"{operation} {{ {call}{self.selection(field['type'])} }}"
                found.append(RootField(operation, field["name"], document))
        return found


async def _guest(app: RunningApp, name: str = "Visitor") -> Account:
    payload = (await data(app.http, START, {"input": {"name": name}}))["startGuestSession"]
    return Account(
        app.http, payload["user"]["id"], name, payload["accessToken"], payload["refreshToken"]
    )


async def _root_fields(app: RunningApp) -> list[RootField]:
    return _Schema(await data(app.http, ROOT_FIELDS)).root_fields()


def test_the_guest_allow_list_is_what_the_support_widget_needs() -> None:
    assert GUEST_ALLOWED == WIDGET_NEEDS


async def test_a_guest_gets_forbidden_from_every_query_and_mutation_not_on_its_list(
    app: RunningApp,
) -> None:
    # given a guest session, and every root field the API has
    guest = await _guest(app)
    fields = [f for f in await _root_fields(app) if f.operation != "subscription"]
    assert {"user", "searchUsers", "updateProfile", "setPhoneNumber"} <= {f.name for f in fields}
    # when the guest calls each one that is not on its list
    answers = {}
    for field in fields:
        if field.name not in GUEST_ALLOWED:
            body = await graphql(app.http, field.document, token=guest.token)
            answers[field.name] = [e["extensions"]["code"] for e in body.get("errors", [])]
    # then every one of them is FORBIDDEN, and nothing else
    assert answers and answers == {name: ["FORBIDDEN"] for name in answers}


async def test_a_guest_gets_forbidden_from_every_subscription_not_on_its_list(
    server: RunningApp,
) -> None:
    assert server.ws_url
    guest = await _guest(server)
    fields = [f for f in await _root_fields(server) if f.operation == "subscription"]
    refused = [f for f in fields if f.name not in GUEST_ALLOWED]
    assert {"friendEvents", "presenceChanged"} <= {f.name for f in refused}
    for field in refused:
        async with subscribe(server.ws_url, guest.token, field.document) as feed:
            with pytest.raises(TransportQueryError) as refusal:
                await feed.next()
        assert refusal.value.errors is not None
        codes = [e["extensions"]["code"] for e in refusal.value.errors]
        assert codes == ["FORBIDDEN"], field.name


async def test_a_guest_cannot_walk_profiles_search_rename_itself_or_text_a_number(
    app: RunningApp,
) -> None:
    # given a person, and a guest who knows their id
    alice = await register(app.http, "alice")
    guest = await _guest(app)
    attempts = [
        (PROFILE, {"id": alice.id}),
        (SEARCH, {"q": "alice"}),
        (RENAME, {"n": "Support Team"}),
        (SET_PHONE, {"phone": "+15551234567"}),
    ]
    for document, variables in attempts:
        with pytest.raises(GraphQLError) as refusal:
            await guest.call(document, **variables)
        assert refusal.value.codes == ["FORBIDDEN"], document
    # and its name is as it was
    assert (await guest.call(ME))["me"]["displayName"] == "Visitor"


async def test_a_guest_still_does_everything_the_support_widget_needs(server: RunningApp) -> None:
    # given support staff and a guest
    assert server.ws_url
    await admin.create_admin(server.runtime, username="agent", password=PASSWORD)
    login = await data(
        server.http,
        "mutation L($i: LoginInput!) { login(input: $i) { accessToken user { id } } }",
        {"i": {"login": "agent", "password": PASSWORD}},
    )
    agent = Account(
        server.http, login["login"]["user"]["id"], "agent", login["login"]["accessToken"], ""
    )
    guest = await _guest(server, "Ada")
    # when it chats: its profile, a message, typing, receipts, its inbox, live events
    assert (await guest.call(ME))["me"]["displayName"] == "Ada"
    sent = await guest.send("Hello, is anyone there?", to=agent)
    conversation = sent["conversationId"]
    await guest.call(
        "mutation T($c: ID!) { setTyping(conversationId: $c, typing: true) }", c=conversation
    )
    await agent.send("Yes, how can I help?", conversation_id=conversation)
    live = {"id": conversation, "afterSeq": 1}
    async with subscribe(server.ws_url, guest.token, CONVERSATION_EVENTS, live) as feed:
        reply = await feed.next()
    assert reply["message"]["body"] == "Yes, how can I help?"
    async with subscribe(server.ws_url, guest.token, MY_EVENTS, {"after": "0"}) as feed:
        assert (await feed.next())["conversationId"] == conversation
    await guest.call(MARK_READ, c=conversation, s=2)
    await guest.call(MARK_DELIVERED, c=conversation, s=2)
    inbox = await guest.call("{ conversations { edges { node { id } } } }")
    assert [e["node"]["id"] for e in inbox["conversations"]["edges"]] == [conversation]
    one = await guest.call("query C($id: ID!) { conversation(id: $id) { id } }", id=conversation)
    assert one["conversation"]["id"] == conversation
    # and keeps its session alive, then ends it
    refreshed = await data(server.http, REFRESH, {"token": guest.refresh_token}, token=guest.token)
    assert refreshed["refreshToken"]["accessToken"]
    assert (await guest.call("mutation { logout }"))["logout"] is True


@pytest.mark.parametrize("name", ["Support Team", "support", "ADMIN", "chatr", "Supp0rt Team"])
async def test_a_guest_cannot_call_itself_by_a_staff_name(app: RunningApp, name: str) -> None:
    with pytest.raises(GraphQLError) as refusal:
        await data(app.http, START, {"input": {"name": name}})
    assert refusal.value.codes == ["BAD_USER_INPUT"]


async def test_a_person_cannot_take_a_staff_name_but_staff_can(app: RunningApp) -> None:
    # a new account asking for one
    body = await graphql(
        app.http,
        "mutation R($i: RegisterInput!) { register(input: $i) { accessToken } }",
        {"i": {"username": "mimic", "password": PASSWORD, "displayName": "Support Team"}},
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    # an existing person renaming themselves
    alice = await register(app.http, "alice")
    with pytest.raises(GraphQLError) as rename:
        await alice.call(RENAME, n="chatr Admin")
    assert rename.value.codes == ["BAD_USER_INPUT"]
    # while an administrator may
    await admin.create_admin(app.runtime, username="boss", password=PASSWORD)
    login = await data(
        app.http,
        "mutation L($i: LoginInput!) { login(input: $i) { accessToken } }",
        {"i": {"login": "boss", "password": PASSWORD}},
    )
    renamed = await data(
        app.http, RENAME, {"n": "Support Team"}, token=login["login"]["accessToken"]
    )
    assert renamed["updateProfile"]["displayName"] == "Support Team"
