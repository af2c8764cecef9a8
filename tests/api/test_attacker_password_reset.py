"""requestPasswordReset from an enumerator's side: nothing about the answer, not even its
time, says whether an address has an account.

The request path does the same work for both (a rate-limit hit and one outbox job); the
lookup, the code and the mail happen in that job. The structural test counts what the request
itself does; the timing test compares medians of many alternating samples.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from chatr.infra.outbox import Delivery
from tests.api.test_email_flows import NEW_PASSWORD, RESET
from tests.support.api import data, graphql, register
from tests.support.servers import RunningApp
from tests.support.smtp_sink import SmtpSink

REQUEST_RESET = "mutation R($email: String!) { requestPasswordReset(email: $email) }"

#: Set while a measured request runs: work done by the outbox's own task is not counted.
_measured: ContextVar[Work | None] = ContextVar("measured", default=None)


@dataclass
class Work:
    statements: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)


@contextmanager
def work_of_this_request(app: RunningApp) -> Iterator[Work]:
    """SQL statements (both engines) and outbox jobs of the request made inside the block."""
    work = Work()
    engines = [app.runtime.db.engine.sync_engine, app.runtime.db.autocommit_engine.sync_engine]
    outbox = app.runtime.outbox
    submit = outbox.submit

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        measured = _measured.get()
        if measured is not None:
            measured.statements.append(statement)

    def counted_submit(delivery: Delivery) -> None:
        measured = _measured.get()
        if measured is not None:
            measured.jobs.append(delivery.channel)
        submit(delivery)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    outbox.submit = counted_submit  # type: ignore[method-assign]
    token = _measured.set(work)
    try:
        yield work
    finally:
        _measured.reset(token)
        outbox.submit = submit  # type: ignore[method-assign]
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def test_the_statement_counter_sees_a_requests_sql(mail_app: RunningApp) -> None:
    # the instrument itself: a request that does touch the database is seen doing so
    with work_of_this_request(mail_app) as work:
        await register(mail_app.http, "counted")
    assert len(work.statements) >= 2


async def test_a_reset_request_does_the_same_work_for_a_real_and_an_unknown_address(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    # given one registered address and one nobody has
    await register(mail_app.http, "real")
    await smtp.next_code("real@example.com")  # the sign-up mail is out of the way
    # when a reset is requested for each
    with work_of_this_request(mail_app) as for_real:
        await data(mail_app.http, REQUEST_RESET, {"email": "real@example.com"})
    with work_of_this_request(mail_app) as for_unknown:
        await data(mail_app.http, REQUEST_RESET, {"email": "unknown@example.com"})
    # then the requests did the same SQL and queued the same jobs
    assert for_real.statements == for_unknown.statements
    assert for_real.jobs == for_unknown.jobs == ["password-reset"]
    # and only the real address gets a code, off the request path
    assert len(await smtp.next_code("real@example.com", after=1)) == 6
    await asyncio.sleep(0.2)
    assert smtp.mail_to("unknown@example.com") == []


async def _answer_time(app: RunningApp, email: str) -> float:
    started = time.perf_counter()
    await data(app.http, REQUEST_RESET, {"email": email})
    return time.perf_counter() - started


async def test_a_reset_request_takes_as_long_for_a_real_as_for_an_unknown_address(
    mail_app: RunningApp,
) -> None:
    # given a registered address, and the first requests (warm-up) out of the way
    await register(mail_app.http, "timed")
    for email in ("timed@example.com", "untimed@example.com"):
        await _answer_time(mail_app, email)
    # when many requests alternate between it and an unknown one, the outbox idle in between
    real: list[float] = []
    unknown: list[float] = []
    for i in range(41):
        pair = [("timed@example.com", real), (f"nobody{i}@example.com", unknown)]
        for email, samples in pair if i % 2 else reversed(pair):
            samples.append(await _answer_time(mail_app, email))
            await asyncio.sleep(0.05)  # let the job (lookup, code, mail) finish
    # then the median answer times differ by less than the 25-45 ms a real address used to
    # cost: the tolerance is generous for a shared machine, far below that gap
    difference = abs(statistics.median(real) - statistics.median(unknown))
    assert difference < 0.01, (statistics.median(real), statistics.median(unknown))


async def test_a_wrong_reset_code_costs_the_same_statements_for_a_real_and_an_unknown_address(
    mail_app: RunningApp, smtp: SmtpSink
) -> None:
    # given a registered address with no reset pending, and one nobody has
    await register(mail_app.http, "guessed")
    await smtp.next_code("guessed@example.com")
    # when someone tries a code for each
    work = {}
    for email in ("guessed@example.com", "unheard@example.com"):
        variables = {"email": email, "code": "123456", "password": NEW_PASSWORD}
        with work_of_this_request(mail_app) as work[email]:
            body = await graphql(mail_app.http, RESET, variables)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    # then both answers took the same statements (an unknown address looks for a code too)
    assert work["guessed@example.com"].statements == work["unheard@example.com"].statements
    assert work["guessed@example.com"].statements  # the code lookup itself
