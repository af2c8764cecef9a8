"""A small GraphQL-over-HTTP client for tests, plus the documents they share."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import httpx

REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) { accessToken refreshToken accessTokenExpiresAt user { id username } }
}
"""
LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) { accessToken refreshToken user { id username } }
}
"""
REFRESH = """
mutation Refresh($token: String!) {
  refreshToken(refreshToken: $token) { accessToken refreshToken }
}
"""
LOGOUT = "mutation { logout }"
ME = "query { me { id username displayName } }"
SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id seq body conversationId clientMessageId sender { id } }
}
"""
MARK_READ = """
mutation MarkRead($c: ID!, $s: Int!) {
  markRead(conversationId: $c, upToSeq: $s) { lastReadSeq lastDeliveredSeq user { id } }
}
"""
MARK_DELIVERED = """
mutation MarkDelivered($c: ID!, $s: Int!) {
  markDelivered(conversationId: $c, upToSeq: $s) { lastReadSeq lastDeliveredSeq }
}
"""
SET_TYPING = "mutation Typing($c: ID!, $t: Boolean!) { setTyping(conversationId: $c, typing: $t) }"

_counter = itertools.count(1)
PASSWORD = "Secret-pass1"


class GraphQLError(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]


async def graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    """The raw JSON response."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def data(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> dict[str, Any]:
    """`data` of a response that must have no errors (else GraphQLError with the codes)."""
    body = await graphql(http, query, variables, token=token)
    if body.get("errors"):
        raise GraphQLError(body["errors"])
    return body["data"]


@dataclass
class Account:
    """A registered user and their tokens, able to act through one app instance."""

    http: httpx.AsyncClient
    id: str
    username: str
    token: str
    refresh_token: str

    async def call(self, query: str, **variables: Any) -> dict[str, Any]:
        return await data(self.http, query, variables, token=self.token)

    async def send(
        self,
        body: str,
        *,
        to: Account | None = None,
        conversation_id: str | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        message_input: dict[str, Any] = {
            "body": body,
            "clientMessageId": client_id or f"c-{next(_counter)}",
        }
        if to is not None:
            message_input["recipientId"] = to.id
        if conversation_id is not None:
            message_input["conversationId"] = conversation_id
        return (await self.call(SEND, input=message_input))["sendMessage"]

    def via(self, http: httpx.AsyncClient) -> Account:
        """The same account acting through another app instance."""
        return Account(http, self.id, self.username, self.token, self.refresh_token)


async def register(http: httpx.AsyncClient, username: str | None = None) -> Account:
    username = username or f"user{next(_counter)}"
    result = await data(
        http,
        REGISTER,
        {"input": {"username": username, "password": PASSWORD, "email": f"{username}@example.com"}},
    )
    payload = result["register"]
    return Account(
        http, payload["user"]["id"], username, payload["accessToken"], payload["refreshToken"]
    )


# Friends and blocking (tests/social).
SEND_FRIEND_REQUEST = """
mutation Ask($u: ID!) { sendFriendRequest(userId: $u) { state requestedByMe user { id } } }
"""
ACCEPT_FRIEND_REQUEST = """
mutation Accept($u: ID!) { acceptFriendRequest(userId: $u) { state requestedByMe user { id } } }
"""
DECLINE_FRIEND_REQUEST = "mutation Decline($u: ID!) { declineFriendRequest(userId: $u) { id } }"
CANCEL_FRIEND_REQUEST = "mutation Cancel($u: ID!) { cancelFriendRequest(userId: $u) { id } }"
REMOVE_FRIEND = "mutation Remove($u: ID!) { removeFriend(userId: $u) { id } }"
BLOCK_USER = "mutation Block($u: ID!) { blockUser(userId: $u) { user { id } blockedAt } }"
UNBLOCK_USER = "mutation Unblock($u: ID!) { unblockUser(userId: $u) { id blocked } }"
FRIENDS = "query { friends { edges { node { user { id } state } } } }"
INCOMING_FRIEND_REQUESTS = (
    "query { incomingFriendRequests { edges { node { user { id } requestedByMe } } } }"
)
OUTGOING_FRIEND_REQUESTS = (
    "query { outgoingFriendRequests { edges { node { user { id } requestedByMe } } } }"
)
BLOCKED_USERS = "query { blockedUsers { edges { node { user { id } } } } }"
FRIEND_EVENTS = "subscription { friendEvents { kind byMe user { id } occurredAt } }"


async def user_ids(account: Account, query: str) -> list[str]:
    """The `user.id` of every node of the one connection `query` selects."""
    (connection,) = (await account.call(query)).values()
    return [edge["node"]["user"]["id"] for edge in connection["edges"]]


# Phone verification and second factor by code (tests/api/test_phone_*, test_two_factor_codes).
VERIFY_PHONE = "mutation V($code: String!) { verifyPhone(code: $code) { id phone phoneVerified } }"
VERIFY_EMAIL = "mutation V($code: String!) { verifyEmail(code: $code) { id emailVerified } }"
SET_PHONE = (
    "mutation P($phone: String!) { setPhoneNumber(phone: $phone) { id phone phoneVerified } }"
)
ME_VERIFICATION = "query { me { emailVerified phoneVerified twoFactorEnabled twoFactorMethod } }"


async def register_with_phone(
    http: httpx.AsyncClient, username: str, phone: str, *, email: bool = True
) -> Account:
    """`register` with a phone number (and, unless told otherwise, an email address)."""
    account_input: dict[str, Any] = {"username": username, "password": PASSWORD, "phone": phone}
    if email:
        account_input["email"] = f"{username}@example.com"
    payload = (await data(http, REGISTER, {"input": account_input}))["register"]
    return Account(
        http, payload["user"]["id"], username, payload["accessToken"], payload["refreshToken"]
    )
