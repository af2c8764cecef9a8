"""The fault tests' failure report names what is missing and where the hub stands."""

from __future__ import annotations

import pytest

from tests.realtime.delivery_report import receive_messages
from tests.support.api import register
from tests.support.servers import RunningApp
from tests.support.ws import Feed


def _posted(seq: int) -> dict[str, object]:
    return {"__typename": "MessagePostedEvent", "message": {"seq": seq}}


async def test_a_subscriber_missing_a_message_fails_with_a_report_naming_its_seq(
    app: RunningApp,
) -> None:
    # given three messages logged, of which a feed received the first and the third
    alice, bob = await register(app.http), await register(app.http)
    conversation_id = (await bob.send("m1", to=alice))["conversationId"]
    for body in ("m2", "m3"):
        await bob.send(body, conversation_id=conversation_id)
    feed = Feed()
    for seq in (1, 3):
        feed.queue.put_nowait(_posted(seq))
    # when the test waits for all three
    with pytest.raises(AssertionError) as failed:
        await receive_messages(
            feed, [], 3, runtime=app.runtime, conversation_id=conversation_id, timeout=0.2
        )
    # then the failure says which seq is missing and where the log and the hub stand
    report = str(failed.value)
    assert "missing seqs [2]" in report
    assert "missing events in the log: [(" in report
    assert "hub position" in report and "broker" in report
