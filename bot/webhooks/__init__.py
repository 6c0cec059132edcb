"""Inbound webhooks: each verifies its caller, parses, and hands the message to `receive`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot import keys
from bot.inbound import Arrival, Outcome, answered_late, receive_batched
from core.db import describe_failure

log = logging.getLogger(__name__)


class NotStored(Exception):
    """The message could not be stored: the sender must hear so and send it again."""


async def receive_in_time(
    app: web.Application,
    arrival: Arrival,
    *,
    callback_url: str | None = None,
    once_stored: Callable[[Outcome], None] | None = None,
) -> Outcome | None:
    """Store `arrival` (group-committed with whatever else is waiting) and return what to
    answer — or None once `server.skill_budget_ms` has passed: the caller answers without
    it, the message still commits, and the consoles hear of it then. A chat message's late
    answer then goes to Kakao's `callback_url` if the skill gave one (see `answered_late`).
    `once_stored` is called with the outcome when the message has committed, in time or
    late. Raises NotStored if the message could not be stored, or if the budget passed
    while the database is failing writes: then it is most likely lost, and "received" would
    be a promise nobody keeps."""
    writer = app[keys.DATABASE].writer
    try:
        committed = writer.submit(receive_batched(arrival, app[keys.SERVICES]))
    except RuntimeError as exc:  # the writer has stopped: shutting down
        raise NotStored(str(exc)) from exc
    budget = app[keys.SETTINGS].server.skill_budget_ms / 1000
    if await _done_within(committed, budget):
        try:
            outcome: Outcome = committed.result()
        except Exception as exc:
            raise NotStored(describe_failure(exc)) from exc
        if once_stored is not None:
            once_stored(outcome)
        return outcome
    failing = not writer.health.ok
    log.warning(
        "%s message: database %s than %.1fs; answered without waiting",
        arrival.channel,
        "failing and slower" if failing else "slower",
        budget,
        extra={"shop": arrival.shop.slug},
    )
    # Should it commit after all, its photos are fetched (the consoles hear of it then, as
    # they hear of every message: `bot.inbound` announces it to follow the commit).
    if once_stored is not None:
        committed.add_done_callback(_when_stored(once_stored))
    if failing:
        # The sender is told to send again. Should this one commit after all, a customer's
        # resend makes it twice in the inbox (a vendor's resend has the same fingerprint and
        # is stored once): better than once lost.
        app[keys.BACKGROUND].track(committed, "message answered as not stored")
        raise NotStored(writer.health.error)
    if arrival.channel == "sms":  # its answer goes by the outbox in any case
        app[keys.BACKGROUND].track(committed, "late sms message")
    else:
        settle = _settle_late(app, arrival, committed, callback_url)
        app[keys.BACKGROUND].track(asyncio.ensure_future(settle), "late chat message")
    return None


async def _done_within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Wait up to `seconds` for `future`, leaving it running if it is not done by then.
    What `asyncio.wait((future,), timeout=seconds)` does, without its sets and its waiter
    per call: on the Kakao webhook that was 5 % of a request's CPU (py-spy)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(seconds, wake, None)
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()


def _when_stored(then: Callable[[Outcome], None]) -> Callable[[asyncio.Future[Outcome]], None]:
    def done(committed: asyncio.Future[Outcome]) -> None:
        if not committed.cancelled() and committed.exception() is None:
            then(committed.result())

    return done


async def _settle_late(
    app: web.Application,
    arrival: Arrival,
    committed: asyncio.Future[Outcome],
    callback_url: str | None,
) -> None:
    outcome = await committed
    unit = answered_late(arrival.shop_id, outcome, app[keys.CLOCK].now(), callback_url=callback_url)
    await app[keys.DATABASE].write(unit)
