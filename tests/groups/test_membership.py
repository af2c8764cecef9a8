"""Creating groups, invitations, leaving, removal, roles and ownership, through GraphQL."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.groups.helpers import (
    ACCEPT,
    DECLINE,
    INVITE,
    LEAVE,
    MY_INVITES,
    PROMOTE,
    REMOVE,
    TRANSFER,
    UPDATE_GROUP,
    create_group,
    group,
    group_with,
    history,
    roles,
    system_actions,
)
from tests.support.api import BLOCK_USER, MARK_READ, Account, GraphQLError, data, register
from tests.support.servers import RunningApp


async def _people(app: RunningApp, count: int) -> list[Account]:
    return [await register(app.http) for _ in range(count)]


async def test_the_creator_owns_the_group_and_invitees_wait_as_pending(app: RunningApp) -> None:
    # given
    alice, bob, carol = await _people(app, 3)
    # when
    created = await create_group(
        alice, invitees=[bob, carol], name="Climbing", description="Sundays"
    )
    # then
    assert (created["kind"], created["name"], created["description"]) == (
        "GROUP",
        "Climbing",
        "Sundays",
    )
    assert created["myRole"] == "OWNER"
    assert [(m["user"]["id"], m["role"], m["state"]) for m in created["members"]] == [
        (alice.id, "OWNER", "ACCEPTED")
    ]
    assert {
        (m["user"]["id"], m["state"], m["invitedBy"]["id"]) for m in created["invitedMembers"]
    } == {
        (bob.id, "PENDING", alice.id),
        (carol.id, "PENDING", alice.id),
    }
    invites = (await bob.call(MY_INVITES))["myGroupInvites"]
    assert [(i["conversationId"], i["name"], i["invitedBy"]["id"]) for i in invites] == [
        (created["id"], "Climbing", alice.id)
    ]


async def test_an_invitee_sees_no_history_until_they_accept(app: RunningApp) -> None:
    alice, bob = await _people(app, 2)
    group_id = (await create_group(alice, invitees=[bob]))["id"]
    await alice.send("before bob joined", conversation_id=group_id)
    with pytest.raises(GraphQLError) as refused:
        await history(bob, group_id)
    assert refused.value.codes == ["FORBIDDEN"]
    await bob.call(ACCEPT, c=group_id)
    assert [m["body"] for m in await history(bob, group_id) if m["kind"] == "TEXT"] == [
        "before bob joined"
    ]
    assert (await bob.call(MY_INVITES))["myGroupInvites"] == []


@pytest.mark.smoke
async def test_system_messages_take_seqs_in_the_same_sequence_as_messages(
    app: RunningApp,
) -> None:
    # given
    alice, bob, carol = await _people(app, 3)
    group_id = (await create_group(alice, invitees=[bob]))["id"]
    # when a mix of membership changes and messages happens
    await bob.call(ACCEPT, c=group_id)
    await bob.send("hi all", conversation_id=group_id)
    await alice.call(INVITE, c=group_id, u=[carol.id])
    await carol.call(ACCEPT, c=group_id)
    await alice.call(PROMOTE, c=group_id, u=bob.id)
    await alice.call(UPDATE_GROUP, input={"conversationId": group_id, "name": "Renamed"})
    await alice.call(REMOVE, c=group_id, u=carol.id)
    await bob.call(LEAVE, c=group_id)
    # then each is one message with the next seq, saying what happened and to whom
    messages = await history(alice, group_id)
    assert [m["seq"] for m in messages] == list(range(1, 11))
    assert [(m["kind"], m["system"] and m["system"]["action"]) for m in messages] == [
        ("SYSTEM", "CREATED"),
        ("SYSTEM", "INVITED"),
        ("SYSTEM", "JOINED"),
        ("TEXT", None),
        ("SYSTEM", "INVITED"),
        ("SYSTEM", "JOINED"),
        ("SYSTEM", "ROLE_CHANGED"),
        ("SYSTEM", "RENAMED"),
        ("SYSTEM", "REMOVED"),
        ("SYSTEM", "LEFT"),
    ]
    by_action = {m["system"]["action"]: m for m in messages if m["system"]}
    assert by_action["ROLE_CHANGED"]["system"]["role"] == "ADMIN"
    assert by_action["ROLE_CHANGED"]["system"]["targets"] == [{"id": bob.id}]
    assert by_action["RENAMED"]["system"]["name"] == "Renamed"
    assert by_action["REMOVED"]["sender"] == {"id": alice.id}
    assert by_action["REMOVED"]["system"]["targets"] == [{"id": carol.id}]
    assert by_action["LEFT"]["sender"] == {"id": bob.id}
    assert (await group(alice, group_id))["lastSeq"] == 10


async def test_updating_details_changes_only_what_was_passed_and_null_clears(
    app: RunningApp,
) -> None:
    alice, bob = await _people(app, 2)
    group_id = await group_with(alice, admins=[bob])
    await alice.call(
        UPDATE_GROUP,
        input={
            "conversationId": group_id,
            "description": "About us",
            "avatarUrl": "https://img.example/a.png",
            "coverUrl": "https://img.example/c.png",
        },
    )
    updated = (
        await bob.call(UPDATE_GROUP, input={"conversationId": group_id, "description": None})
    )["updateGroup"]
    assert (updated["name"], updated["description"]) == ("Team", None)
    assert (updated["avatarUrl"], updated["coverUrl"]) == (
        "https://img.example/a.png",
        "https://img.example/c.png",
    )
    assert system_actions(await history(alice, group_id))[-2:] == [
        "DETAILS_UPDATED",
        "DETAILS_UPDATED",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"name": ""},
        {"name": None},
        {"name": "x" * 101},
        {"avatarUrl": "javascript:alert(1)"},
        {"description": "x" * 1001},
    ],
)
async def test_invalid_details_are_bad_user_input(app: RunningApp, bad: dict[str, object]) -> None:
    (alice,) = await _people(app, 1)
    group_id = await group_with(alice)
    with pytest.raises(GraphQLError) as refused:
        await alice.call(UPDATE_GROUP, input={"conversationId": group_id, **bad})
    assert refused.value.codes == ["BAD_USER_INPUT"]
    assert (await group(alice, group_id))["name"] == "Team"


@pytest.mark.smoke
async def test_a_leaving_sole_owner_hands_the_group_to_the_oldest_admin(app: RunningApp) -> None:
    # given a member who joined first, then two admins
    alice, member, first_admin, second_admin = await _people(app, 4)
    group_id = await group_with(alice, members=[member], admins=[first_admin, second_admin])
    # when the owner leaves
    assert (await alice.call(LEAVE, c=group_id))["leaveGroup"] == {"conversationId": group_id}
    # then the admin who joined first owns it, and the others keep their roles
    assert roles(await group(member, group_id)) == {
        member.id: "MEMBER",
        first_admin.id: "OWNER",
        second_admin.id: "ADMIN",
    }
    assert system_actions(await history(member, group_id))[-2:] == [
        "LEFT",
        "OWNERSHIP_TRANSFERRED",
    ]


async def test_a_leaving_owner_without_admins_hands_the_group_to_the_oldest_member(
    app: RunningApp,
) -> None:
    alice, older, newer = await _people(app, 3)
    group_id = await group_with(alice, members=[older, newer])
    await alice.call(LEAVE, c=group_id)
    assert roles(await group(newer, group_id)) == {older.id: "OWNER", newer.id: "MEMBER"}


@pytest.mark.smoke
async def test_the_last_one_out_deletes_the_group(app: RunningApp) -> None:
    # given a group whose only member is its owner, with an unanswered invitation
    alice, bob = await _people(app, 2)
    group_id = (await create_group(alice, invitees=[bob]))["id"]
    # when she leaves
    await alice.call(LEAVE, c=group_id)
    # then the group is gone, invitation included
    for account in (alice, bob):
        with pytest.raises(GraphQLError) as gone:
            await group(account, group_id)
        assert gone.value.codes == ["NOT_FOUND"]
    assert (await bob.call(MY_INVITES))["myGroupInvites"] == []


async def test_transferring_ownership_makes_the_old_owner_an_admin(app: RunningApp) -> None:
    alice, bob, carol = await _people(app, 3)
    group_id = await group_with(alice, members=[bob], pending=[carol])
    # an invitation is not membership: she cannot be handed the group yet
    with pytest.raises(GraphQLError) as pending:
        await alice.call(TRANSFER, c=group_id, u=carol.id)
    assert pending.value.codes == ["NOT_FOUND"]
    transferred = (await alice.call(TRANSFER, c=group_id, u=bob.id))["transferGroupOwnership"]
    assert roles(transferred) == {alice.id: "ADMIN", bob.id: "OWNER"}
    assert transferred["myRole"] == "ADMIN"


async def test_nobody_removes_the_owner(app: RunningApp) -> None:
    alice, bob = await _people(app, 2)
    group_id = await group_with(alice, admins=[bob])
    with pytest.raises(GraphQLError) as refused:
        await bob.call(REMOVE, c=group_id, u=alice.id)
    assert refused.value.codes == ["FORBIDDEN"]
    with pytest.raises(GraphQLError) as herself:
        await alice.call(REMOVE, c=group_id, u=alice.id)
    assert herself.value.codes == ["BAD_USER_INPUT"]
    assert roles(await group(alice, group_id)) == {alice.id: "OWNER", bob.id: "ADMIN"}


async def test_an_admin_can_withdraw_an_invitation(app: RunningApp) -> None:
    alice, bob, carol = await _people(app, 3)
    group_id = await group_with(alice, admins=[bob], pending=[carol])
    await bob.call(REMOVE, c=group_id, u=carol.id)
    assert (await carol.call(MY_INVITES))["myGroupInvites"] == []
    # without her invitation she is an outsider again: the group is NOT_FOUND to her
    with pytest.raises(GraphQLError) as refused:
        await carol.call(ACCEPT, c=group_id)
    assert refused.value.codes == ["NOT_FOUND"]


async def test_a_declined_invitation_can_be_sent_again(app: RunningApp) -> None:
    alice, bob = await _people(app, 2)
    group_id = (await create_group(alice, invitees=[bob]))["id"]
    declined = (await bob.call(DECLINE, c=group_id))["declineGroupInvite"]
    assert declined == {"conversationId": group_id}
    assert (await group(alice, group_id))["invitedMembers"] == []
    await alice.call(INVITE, c=group_id, u=[bob.id])
    joined = (await bob.call(ACCEPT, c=group_id))["acceptGroupInvite"]
    assert roles(joined) == {alice.id: "OWNER", bob.id: "MEMBER"}


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
REMOVAL = """
mutation Removal($c: ID!) {
  %s(conversationId: $c) { __typename ... on ConversationRemoval { conversationId } }
}
"""


async def test_leave_group_answers_the_group_id(app: RunningApp) -> None:
    # given bob in alice's group
    alice, bob = await _people(app, 2)
    group_id = await group_with(alice, members=[bob])
    # when he leaves, reading the answer as any removal
    left = (await bob.call(REMOVAL % "leaveGroup", c=group_id))["leaveGroup"]
    # then it names the group he left, which is no longer his to see
    assert left == {"__typename": "LeaveGroupPayload", "conversationId": group_id}
    with pytest.raises(GraphQLError) as gone:
        await group(bob, group_id)
    assert gone.value.codes == ["NOT_FOUND"]


def _guide_example() -> str:
    """The graphql example of the client guide's section on what mutations answer."""
    section = GUIDE.read_text().split("\n## What mutations answer\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```graphql\n(.*?)```", section, re.DOTALL)
    assert found, "no graphql example under '## What mutations answer'"
    return found.group(1)


async def test_the_client_guides_removal_example_runs_as_written(app: RunningApp) -> None:
    alice, bob = await _people(app, 2)
    group_id = await group_with(alice, members=[bob])
    left = await bob.call(_guide_example(), id=group_id)
    assert left == {"leaveGroup": {"__typename": "LeaveGroupPayload", "conversationId": group_id}}


async def test_declining_and_deleting_a_group_answer_its_id_as_a_conversation_removal(
    app: RunningApp,
) -> None:
    alice, bob = await _people(app, 2)
    group_id = (await create_group(alice, invitees=[bob]))["id"]
    declined = (await bob.call(REMOVAL % "declineGroupInvite", c=group_id))["declineGroupInvite"]
    assert declined == {"__typename": "DeclineGroupInvitePayload", "conversationId": group_id}
    deleted = (await alice.call(REMOVAL % "deleteGroup", c=group_id))["deleteGroup"]
    assert deleted == {"__typename": "DeleteGroupPayload", "conversationId": group_id}


async def test_inviting_people_already_in_leaves_them_as_they_are(app: RunningApp) -> None:
    alice, bob, carol = await _people(app, 3)
    group_id = await group_with(alice, admins=[bob], pending=[carol])
    before = await history(alice, group_id)
    again = (await alice.call(INVITE, c=group_id, u=[bob.id, carol.id]))["inviteToGroup"]
    assert roles(again) == {alice.id: "OWNER", bob.id: "ADMIN"}
    assert [m["user"]["id"] for m in again["invitedMembers"]] == [carol.id]
    assert await history(alice, group_id) == before


async def test_someone_blocked_either_way_cannot_be_invited_by_that_person(
    app: RunningApp,
) -> None:
    # given alice blocked dave, and erin blocked bob (an admin)
    alice, bob, dave, erin = await _people(app, 4)
    group_id = await group_with(alice, admins=[bob])
    await alice.call(BLOCK_USER, u=dave.id)
    await erin.call(BLOCK_USER, u=bob.id)
    # then alice cannot invite dave (at creation or later), nor bob erin
    for attempt in (
        create_group(alice, invitees=[dave]),
        alice.call(INVITE, c=group_id, u=[dave.id]),
        bob.call(INVITE, c=group_id, u=[erin.id]),
    ):
        with pytest.raises(GraphQLError) as refused:
            await attempt
        assert refused.value.codes == ["FORBIDDEN"]
        assert refused.value.errors[0]["extensions"]["reason"] == "BLOCKED"
    # but alice, whom erin did not block, can
    invited = (await alice.call(INVITE, c=group_id, u=[erin.id]))["inviteToGroup"]
    assert [m["user"]["id"] for m in invited["invitedMembers"]] == [erin.id]
    assert (await dave.call(MY_INVITES))["myGroupInvites"] == []


GUEST = """
mutation Start($input: GuestSessionInput!) {
  startGuestSession(input: $input) { accessToken refreshToken user { id } }
}
"""


async def test_guests_cannot_be_invited_nor_create_groups(app: RunningApp) -> None:
    (alice,) = await _people(app, 1)
    payload = (await data(app.http, GUEST, {"input": {"name": "Visitor"}}))["startGuestSession"]
    guest = Account(app.http, payload["user"]["id"], "guest", payload["accessToken"], "")
    with pytest.raises(GraphQLError) as invited:
        await create_group(alice, invitees=[guest])
    assert invited.value.codes == ["FORBIDDEN"]
    with pytest.raises(GraphQLError) as created:
        await create_group(guest)
    assert created.value.codes == ["FORBIDDEN"]


async def test_direct_conversations_are_not_groups(app: RunningApp) -> None:
    alice, bob, carol = await _people(app, 3)
    conversation_id = (await alice.send("hi", to=bob))["conversationId"]
    with pytest.raises(GraphQLError) as refused:
        await alice.call(INVITE, c=conversation_id, u=[carol.id])
    assert refused.value.codes == ["BAD_USER_INPUT"]


async def test_concurrent_changes_leave_exactly_one_owner(app: RunningApp) -> None:
    # given an owner with two admins and two members
    alice, admin1, admin2, member1, member2 = await _people(app, 5)
    group_id = await group_with(alice, admins=[admin1, admin2], members=[member1, member2])
    # when the owner hands over, leaves and promotes at once, and both admins remove the
    # same member
    outcomes = await asyncio.gather(
        alice.call(TRANSFER, c=group_id, u=admin2.id),
        alice.call(LEAVE, c=group_id),
        alice.call(PROMOTE, c=group_id, u=member1.id),
        admin1.call(REMOVE, c=group_id, u=member2.id),
        admin2.call(REMOVE, c=group_id, u=member2.id),
        # (receipts and messages append events meanwhile: none of it may deadlock)
        member1.call(MARK_READ, c=group_id, s=1),
        member2.send("still here?", conversation_id=group_id),
        admin1.call(MARK_READ, c=group_id, s=2),
        return_exceptions=True,
    )
    # then whatever order they ran in, there is one owner and member2 was removed once
    for outcome in outcomes:
        assert not isinstance(outcome, GraphQLError) or set(outcome.codes) <= {
            "FORBIDDEN",
            "NOT_FOUND",
        }, outcome
    view = await group(admin1, group_id)
    assert list(roles(view).values()).count("OWNER") == 1
    assert alice.id not in roles(view) and member2.id not in roles(view)
    assert system_actions(await history(admin1, group_id)).count("REMOVED") == 1


INBOX = "query { conversations { edges { node { id kind name lastMessage { kind body } } } } }"


async def test_a_group_is_in_the_inbox_of_members_only(app: RunningApp) -> None:
    alice, bob = await _people(app, 2)
    group_id = (await create_group(alice, invitees=[bob], name="Climbing"))["id"]
    assert (await bob.call(INBOX))["conversations"]["edges"] == []
    await bob.call(ACCEPT, c=group_id)
    (edge,) = (await bob.call(INBOX))["conversations"]["edges"]
    assert edge["node"]["id"] == group_id
    assert (edge["node"]["kind"], edge["node"]["name"]) == ("GROUP", "Climbing")
    assert edge["node"]["lastMessage"] == {"kind": "SYSTEM", "body": f"@{bob.username} joined"}


async def test_a_block_between_two_members_does_not_silence_either_in_the_group(
    app: RunningApp,
) -> None:
    # given alice and bob in a group, and alice blocks bob afterwards
    alice, bob = await _people(app, 2)
    group_id = await group_with(alice, members=[bob])
    await alice.call(BLOCK_USER, u=bob.id)
    # when both write there, then both messages are in the group (blocks govern DMs, invites
    # and friend requests; leaving or removing is how a group parts ways)
    await bob.send("from bob", conversation_id=group_id)
    await alice.send("from alice", conversation_id=group_id)
    bodies = [m["body"] for m in await history(alice, group_id) if m["kind"] == "TEXT"]
    assert bodies == ["from bob", "from alice"]
