"""The late-answer fix-up: a chat message whose webhook answered before its commit (the
database was slow) must not count as answered by what the customer never saw."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.inbound.answers import Outcome
from bot.inbound.statements import msg_t
from core.db import Unit
from core.outbox import OutboxRequest, enqueue
from providers.kakao_callback import KakaoCallbackProvider


def answered_late(
    shop_id: int, outcome: Outcome, now: datetime, *, callback_url: str | None = None
) -> Unit[int | None]:
    """A chat message committed after its webhook had answered (the database was slow).

    The customer saw a holding reply, not this answer, so nothing may count as handed over:
    owner replies taken from the mailbox go back to it for the next message. With Kakao's
    AI-chatbot callback (`callback_url`, one use, one minute) the real answer is queued to
    it and the stored reply follows that send; without one the stored reply is marked
    cancelled — the console must not claim the customer read it. Returns the callback's
    outbox id, if one was queued.
    """

    def unit(conn: Connection) -> int | None:
        if outcome.mailbox_ids:
            conn.execute(
                sa.update(msg_t)
                .where(msg_t.c.id.in_(outcome.mailbox_ids), msg_t.c.status == "delivered")
                .values(status="held", delivered_at=None)
            )
        reply_id = conn.execute(
            sa.select(msg_t.c.id).where(
                msg_t.c.in_reply_to_id == outcome.message_id, msg_t.c.sender == "bot"
            )
        ).scalar()
        if reply_id is None or outcome.duplicate:
            return None
        if callback_url is None:
            conn.execute(
                sa.update(msg_t)
                .where(msg_t.c.id == reply_id)
                .values(status="cancelled", delivered_at=None, error="answered late")
            )
            return None
        conn.execute(
            sa.update(msg_t)
            .where(msg_t.c.id == reply_id)
            .values(status="queued", path="callback", delivered_at=None)
        )
        return enqueue(
            conn,
            OutboxRequest(
                shop_id=shop_id,
                purpose="reply",
                provider=KakaoCallbackProvider.name,
                recipient={"kakao_callback_url": callback_url},
                payload={"text": "\n\n".join(outcome.reply.texts), "path": "callback"},
                idempotency_key=f"callback:{outcome.message_id}",
                now=now,
                message_id=reply_id,
            ),
        )

    return unit
