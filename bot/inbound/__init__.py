"""Inbound: a customer's message from the webhook to its answer, stage by stage.

A webhook (`bot/webhooks/`) verifies and parses, builds an `Arrival` and hands it to the
database writer (`core.db`) as `receive_batched(arrival, services)`; the writer runs
`receive_many` once for every message sharing its group commit. Its stages, in order,
one module each:

    arrival     what the webhook hands over: the message, its fingerprint, attachment links
    receiving   the stages in order, for a whole batch (`receive_many`), and what they need
    customers   who wrote: customer and open conversation found or created
    storing     each message stored once; resends spotted and answered like their original
    awaited     an answer the shop awaited (a survey score, a reminder reply) recorded as
                such; nothing at all for a customer who owes none
    decision    the handlers (`bot.routing`) answer; what they asked for is applied, owner
                notices go to the outbox (`core.outbox`, which providers/ send from)
    answers     owner replies from the mailbox handed over; the bot's answer stored or
                queued; each message's `Outcome`
    late        the fix-up for a message committed after its webhook had answered

`batch` is the state carried from stage to stage; `statements` the SQL, built once.
"""

from bot.inbound.answers import Outcome
from bot.inbound.arrival import (
    Arrival,
    attachment_links,
    digest_of,
    digest_of_body,
    with_attachments,
)
from bot.inbound.late import answered_late
from bot.inbound.receiving import Services, receive, receive_batched, receive_many

__all__ = [
    "Arrival",
    "Outcome",
    "Services",
    "answered_late",
    "attachment_links",
    "digest_of",
    "digest_of_body",
    "receive",
    "receive_batched",
    "receive_many",
    "with_attachments",
]
