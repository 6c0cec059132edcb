"""The decision: the handlers answer each new message (an awaited answer is answered by
bot.inbound.awaited instead), and what they asked for is applied to its conversation —
waiting for the owner, a complaint's deadline, a consent, the owner's notification through
the outbox; an SMS answer is planned (a text costs the customer)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from bot.inbound.arrival import Arrival, attachment_links
from bot.inbound.awaited import answer_reply
from bot.inbound.batch import Received
from bot.inbound.statements import UPDATE_CONVERSATION
from bot.routing import Context, Incoming
from core.availability import OwnerState
from core.complaints import complaint_due
from core.consents import ConsentChange, record_consents
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue_many
from core.replies import sms_ack_key
from core.texts import Texts

if TYPE_CHECKING:
    from bot.inbound.receiving import Services


def decide(m: Received, owner: OwnerState, services: Services) -> None:
    """Let the handlers answer, and work out what the message changes in its conversation."""
    a, t = m.arrival, m.thread
    now = a.received_at
    ctx = Context(
        shop=a.shop,
        now=now,
        owner=owner,
        median_reply=services.median_reply(a.shop_id),
        texts=services.texts,
        memo=services.memo,
        customer_id=m.customer_id,
        conversation_id=m.conversation_id,
        waiting=t.waiting_since is not None,
        complaint_open=t.complaint,
    )
    if m.answer is None:
        m.reply = services.switchboard.answer(Incoming(a.text, a.channel, a.extra), ctx)
    else:  # a score or reminder reply, recorded already (bot.inbound.awaited)
        m.reply = answer_reply(m, ctx)
    effects = m.effects = ctx.effects
    was_waiting = t.waiting_since is not None

    sla_due_at = None
    if effects.wait_for_owner and t.waiting_since is None:
        t.waiting_since = now
        sla_due_at = now + timedelta(minutes=a.shop.reply_target_minutes)
        m.notify = f"wait:{m.conversation_id}:{int(now.timestamp())}"
    if effects.complaint and not t.complaint:
        m.notify = f"complaint:{m.conversation_id}"
    elif effects.handoff:
        m.notify = f"handoff:{m.conversation_id}:{int(now.timestamp())}"
    if m.answer is not None:
        m.notify = None  # the answer's own notice is queued (bot.inbound.awaited)
    t.complaint = t.complaint or effects.complaint
    if a.channel == "sms":
        _plan_sms_reply(m, was_waiting)

    m.change = {
        "conv_id": m.conversation_id,
        "now": now,
        "digest": a.digest,
        "message_id": m.id,
        "waiting_since": t.waiting_since,
        "sla_due_at": sla_due_at,
        "complaint": t.complaint,
        "complaint_due_at": complaint_due(a.shop, now) if effects.complaint else None,
        "handoff_at": now if effects.handoff else None,
    }


def _plan_sms_reply(m: Received, was_waiting: bool) -> None:
    """An SMS reply costs the customer a text: the "owner will answer" acknowledgement goes
    once per waiting period and only after `sms_ack_delay_seconds` (the owner may answer
    first, and then it is cancelled); a follow-up in the same period sends nothing. When
    the provider already answered an opt-out keyword itself (Twilio's STOP handling on
    long codes), ours would be a second text to a number that just opted out: none goes."""
    a, t = m.arrival, m.thread
    if a.extra.get("opt_out_replied_by"):
        m.silent = True
    elif m.effects.wait_for_owner and t.waiting_since is not None:
        m.ack_key = sms_ack_key(m.conversation_id, t.waiting_since)
        m.silent = was_waiting


def apply_effects(conn: Connection, new: list[Received], texts: Texts) -> None:
    """Update the conversations; record consents; queue the owner notifications."""
    if not new:
        return
    # One row per message, in order: each UPDATE builds on the one before (unread + 1).
    conn.execute(UPDATE_CONVERSATION, [m.change for m in new])

    record_consents(conn, [_consent(m) for m in new if m.effects.consent is not None])

    notices = [row for m in new if m.notify for row in _owner_notices(m, texts)]
    enqueue_many(conn, notices)


def _consent(m: Received) -> ConsentChange:
    assert m.effects.consent is not None
    scope, granted, source = m.effects.consent
    return ConsentChange(
        shop_id=m.arrival.shop_id,
        customer_id=m.customer_id,
        scope=scope,
        granted=granted,
        source=source,
        actor="customer",
        at=m.arrival.received_at,
    )


def _owner_notices(m: Received, texts: Texts) -> list[OutboxRequest]:
    """The outbox rows telling the owner, one per way they want to hear."""
    a, effects = m.arrival, m.effects
    label = f"고객 #{m.customer_id}"
    sent = _what_was_sent(a)
    text = texts.render(
        "owner_notification",
        shop=a.shop,
        customer_label=label,
        body=sent,
        complaint=effects.complaint,
        handoff=effects.handoff,
    )
    kind = "불만 접수" if effects.complaint else "상담 연결 요청" if effects.handoff else "새 문의"
    return owner_notices(
        a.shop,
        a.shop_id,
        m.conversation_id,
        text=text,
        kind=kind,
        customer_label=label,
        content=sent,
        key=lambda provider: f"notify:{provider}:{m.notify}",
        now=a.received_at,
    )


def _what_was_sent(a: Arrival) -> str:
    """The words; for an MMS of pictures alone, what it held, so the owner's notice does
    not read as empty."""
    links = attachment_links(a.extra)
    if a.text.strip() or not links:
        return a.text
    return f"(첨부 {len(links)}개)"
