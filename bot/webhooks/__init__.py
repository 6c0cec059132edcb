"""Inbound webhooks: each verifies its caller, parses, and hands the message to `receive`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot import keys
from bot.inbound import Arrival, Outcome, receive_batched

log = logging.getLogger(__name__)


async def receive_in_time(app: web.Application, arrival: Arrival) -> Outcome | None:
    """Store `arrival` (group-committed with whatever else is waiting) and return what to
    answer — or None once `server.skill_budget_ms` has passed: the caller answers without
    it, the message still commits, and the consoles hear of it then. Raises if the message
    could not be stored at all."""
    committed = app[keys.DATABASE].writer.submit(receive_batched(arrival, app[keys.SERVICES]))
    budget = app[keys.SETTINGS].server.skill_budget_ms / 1000
    done, _ = await asyncio.wait((committed,), timeout=budget)
    if not done:
        log.warning(
            "%s message: database slower than %.1fs; answered without waiting",
            arrival.channel,
            budget,
            extra={"shop": arrival.shop.slug},
        )
        app[keys.BACKGROUND].track(committed, f"late {arrival.channel} message")
        app[keys.LIVE].arrived_when_committed(arrival.shop_id, committed, arrival.text)
        return None
    outcome: Outcome = committed.result()
    app[keys.LIVE].arrived(arrival.shop_id, outcome, arrival.text)
    return outcome
