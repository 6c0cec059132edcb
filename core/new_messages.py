"""A message added to a conversation by core or the scheduler (the journey planner): the
shop's consoles and the simulator hear of it once it commits.

Units in `bot/` announce their own messages (`bot.live.announce`); core and the scheduler
cannot import `bot`, so they register `MessageAdded` with `message_added`, and the app's
live hub turns it into the same "message" event the inbound path publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.writer import after_commit


@dataclass(slots=True)
class MessageAdded:
    """After commit: a message was stored in a conversation."""

    shop_id: int
    conversation_id: int
    message_id: int
    direction: str  # in | out | note
    sender: str  # customer | bot | owner | system
    customer_id: int | None = None
    preview: str | None = None  # the first words, for a browser notification


def message_added(
    shop_id: int,
    conversation_id: int,
    message_id: int,
    *,
    direction: str,
    sender: str,
    customer_id: int | None = None,
    preview: str | None = None,
) -> None:
    """Inside a unit: the shop's consoles hear of the message once (and only if) it commits."""
    after_commit(
        MessageAdded(shop_id, conversation_id, message_id, direction, sender, customer_id, preview)
    )
