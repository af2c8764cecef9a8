"""The write path under load: concurrent senders on two instances, subscribers that keep
dropping and resuming, and every subscriber still ends with every event once, in one order.

50 sender loops post into 20 group conversations through two uvicorn processes (alternating
between them), while subscribers on both processes, over both protocols, `myEvents` and
`conversationEvents`, disconnect after a random number of events and resume from a random
cursor they were given (as a client that lost its tail would). What a subscriber keeps is what
it received up to the cursor it resumed from, then what came after.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from chatr.models import Message
from chatr.settings import Settings
from tests.support.api import Account, GraphQLError, register
from tests.support.ids import Kind, global_id, pk
from tests.support.processes import ServerProcess, uvicorn_process
from tests.support.servers import RunningApp
from tests.support.ws import CONVERSATION_EVENTS, LEGACY_WS, MY_EVENTS, TRANSPORT_WS, subscribe

CONVERSATIONS = 20
SENDER_LOOPS = 50
SENDER_USERS = 10
MESSAGES_PER_LOOP = 8
#: A subscriber takes between these many events before it hangs up.
EVENTS_PER_CONNECTION = (1, 40)
#: How far back (in events received) a resume may start.
RESUME_WINDOW = 25
SETTLE_TIMEOUT = 60.0
#: Events for one person, not about the messages under test.
ADDRESSED_TO_ONE = {"GroupInvitedEvent"}

CREATE_GROUP = """
mutation Create($input: CreateGroupInput!) { createGroup(input: $input) { id } }
"""
ACCEPT = "mutation Accept($c: ID!) { acceptGroupInvite(conversationId: $c) { id } }"


@dataclass(frozen=True)
class Received:
    cursor: str
    conversation_id: str
    seq: int


@dataclass
class Subscriber:
    """One client that keeps hanging up and resuming; `kept` is its view of the stream."""

    name: str
    server: ServerProcess
    token: str
    protocol: str
    #: None: myEvents; else the conversation of a conversationEvents subscription.
    conversation_id: str | None
    rng: random.Random
    kept: list[Received] = field(default_factory=list)
    connections: int = 0

    def _resume_point(self) -> dict[str, Any]:
        """Drop a random tail of what was received and resume after what is kept."""
        keep = self.rng.randint(max(0, len(self.kept) - RESUME_WINDOW), len(self.kept))
        del self.kept[keep:]
        last = self.kept[-1] if self.kept else None
        if self.conversation_id is None:
            return {"after": last.cursor if last else "0"}
        return {"id": self.conversation_id, "afterSeq": last.seq if last else 0}

    async def _connection(self, *, until: Callable[[], bool], timeout: float) -> None:
        document = MY_EVENTS if self.conversation_id is None else CONVERSATION_EVENTS
        variables = self._resume_point()
        self.connections += 1
        wanted = self.rng.randint(*EVENTS_PER_CONNECTION)
        async with subscribe(
            self.server.ws_url, self.token, document, variables, protocol=self.protocol
        ) as feed:
            taken = 0
            while taken < wanted and not until():
                try:
                    event = await feed.next(timeout)
                except TimeoutError:
                    return
                if event["__typename"] in ADDRESSED_TO_ONE:
                    continue  # (the seeding's invitations, replayed from "0" on myEvents)
                assert event["__typename"] == "MessagePostedEvent", event
                self.kept.append(
                    Received(event["cursor"], event["conversationId"], event["message"]["seq"])
                )
                taken += 1

    async def churn(self, senders_done: asyncio.Event) -> None:
        """Drop and resume until the senders are done."""
        while not senders_done.is_set():
            await self._connection(until=senders_done.is_set, timeout=1.0)

    async def settle(self, expected: int) -> None:
        """Resume until everything is in (still dropping a random tail each time)."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while len(self.kept) < expected:
                await self._connection(until=lambda: len(self.kept) >= expected, timeout=5.0)


async def _seed(app: RunningApp) -> tuple[Account, Account, list[Account], list[str]]:
    """Two watchers in all 20 groups; each group has three of the ten senders."""
    first, second = await register(app.http), await register(app.http)
    senders = [await register(app.http) for _ in range(SENDER_USERS)]
    conversation_ids = []
    for number in range(CONVERSATIONS):
        members = [second, *_senders_of(number, senders)]
        created = await first.call(
            CREATE_GROUP,
            input={"name": f"Stress {number}", "inviteeIds": [m.id for m in members]},
        )
        conversation_id = str(created["createGroup"]["id"])
        for member in members:
            await member.call(ACCEPT, c=conversation_id)
        conversation_ids.append(conversation_id)
    return first, second, senders, conversation_ids


def _senders_of(conversation: int, senders: list[Account]) -> list[Account]:
    return [senders[(conversation + offset) % SENDER_USERS] for offset in range(3)]


async def _send_loop(
    number: int, sender: Account, conversation_id: str, clients: list[httpx.AsyncClient]
) -> None:
    for index in range(MESSAGES_PER_LOOP):
        through = sender.via(clients[(number + index) % len(clients)])
        body, key = f"loop {number} #{index}", f"s{number}-{index}"
        while True:
            try:
                await through.send(body, conversation_id=conversation_id, client_id=key)
                break
            except GraphQLError as error:
                # An instance sheds load when its pool stays exhausted (the cluster is shared
                # by the whole suite): a client retries the same message, which is idempotent.
                if error.codes != ["SERVICE_UNAVAILABLE"]:
                    raise
                await asyncio.sleep(0.2)


async def test_every_subscriber_gets_every_event_once_in_one_order_under_concurrent_sends(
    settings: Settings, app: RunningApp
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    first, second, senders, conversation_ids = await _seed(app)
    with uvicorn_process(settings) as a, uvicorn_process(settings) as b:
        async with (
            httpx.AsyncClient(base_url=a.http_url, timeout=30) as http_a,
            httpx.AsyncClient(base_url=b.http_url, timeout=30) as http_b,
        ):
            # given subscribers on both instances, both protocols, both subscriptions
            def subscriber(
                name: str, server: ServerProcess, who: Account, protocol: str, conv: str | None
            ) -> Subscriber:
                return Subscriber(
                    name, server, who.token, protocol, conv, random.Random(rng.random())
                )

            mine = [
                subscriber("first@A", a, first, TRANSPORT_WS, None),
                subscriber("first@B", b, first, LEGACY_WS, None),
                subscriber("second@A", a, second, LEGACY_WS, None),
                subscriber("second@B", b, second, TRANSPORT_WS, None),
            ]
            per_conversation = [
                subscriber("first@A/c0", a, first, LEGACY_WS, conversation_ids[0]),
                subscriber("second@B/c0", b, second, TRANSPORT_WS, conversation_ids[0]),
                subscriber("second@A/c1", a, second, TRANSPORT_WS, conversation_ids[1]),
                subscriber("first@B/c1", b, first, LEGACY_WS, conversation_ids[1]),
            ]
            everyone = mine + per_conversation
            senders_done = asyncio.Event()
            churning = [asyncio.create_task(s.churn(senders_done)) for s in everyone]
            try:
                # when 50 loops send into the 20 conversations through both instances
                clients = [http_a, http_b]
                loops = [
                    (number, _senders_of(number % CONVERSATIONS, senders)[number // CONVERSATIONS])
                    for number in range(SENDER_LOOPS)
                ]
                await asyncio.gather(
                    *(
                        _send_loop(
                            number, sender, conversation_ids[number % CONVERSATIONS], clients
                        )
                        for number, sender in loops
                    )
                )
            finally:
                senders_done.set()
                await asyncio.gather(*churning)
            # then, once everyone has resumed to the end,
            async with app.runtime.db.reader() as session:
                stored = (
                    await session.execute(
                        select(Message.conversation_id, Message.seq).where(
                            Message.conversation_id.in_([pk(c) for c in conversation_ids])
                        )
                    )
                ).all()
                # (`second` joined each group after its first notices: those are not his)
                second_joined = await session.execute(
                    select(Message.conversation_id, func.min(Message.seq))
                    .where(
                        Message.conversation_id.in_([pk(c) for c in conversation_ids]),
                        Message.sender_id == pk(second.id),
                    )
                    .group_by(Message.conversation_id)
                )
            assert len(stored) > SENDER_LOOPS * MESSAGES_PER_LOOP
            last_seq: dict[str, int] = {}
            for conversation_id, seq in stored:
                key = global_id(Kind.CONVERSATION, conversation_id)
                last_seq[key] = max(last_seq.get(key, 0), seq)
            first_seq = {
                ("second", global_id(Kind.CONVERSATION, conversation_id)): seq
                for conversation_id, seq in second_joined
            }

            def expected(s: Subscriber, conversation: str) -> list[int]:
                """The seqs `s` gets of `conversation`: those since its watcher joined."""
                start = first_seq.get((s.name.split("@")[0], conversation), 1)
                return list(range(start, last_seq[conversation] + 1))

            await asyncio.gather(
                *(s.settle(sum(len(expected(s, c)) for c in conversation_ids)) for s in mine),
                *(s.settle(len(expected(s, s.conversation_id or ""))) for s in per_conversation),
            )
    context = f"(seed {seed}; connections: {[s.connections for s in everyone]})"
    assert len(first_seq) == CONVERSATIONS
    # every subscriber has every event since its watcher joined exactly once, each
    # conversation in seq order
    for s in mine:
        total = sum(len(expected(s, c)) for c in conversation_ids)
        assert len({r.cursor for r in s.kept}) == len(s.kept) == total, (s.name, context)
        for conversation in conversation_ids:
            seqs = [r.seq for r in s.kept if r.conversation_id == conversation]
            assert seqs == expected(s, conversation), (s.name, context)
    for s in per_conversation:
        seqs = [r.seq for r in s.kept]
        assert seqs == expected(s, s.conversation_id or ""), (s.name, context)
    # and every myEvents subscriber saw the same global order (the creator's, of which the
    # other watcher's is the part since he joined)
    orders = {s.name: [r.cursor for r in s.kept] for s in mine}
    for name, order in orders.items():
        theirs = set(order)
        assert order == [c for c in orders[mine[0].name] if c in theirs], (name, context)
    assert sum(s.connections for s in everyone) > len(everyone), context
