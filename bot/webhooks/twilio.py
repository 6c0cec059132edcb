"""Twilio webhooks: inbound SMS and delivery status callbacks (PROTOCOLS.md §5).

    POST /hooks/twilio/{shop}/sms     the shop's number received a text
    POST /hooks/twilio/{shop}/status  a message we sent changed state (StatusCallback)

Both check `X-Twilio-Signature` with the auth token of the provider named by the shop's
`[shops.delivery] sms`, over the URL Twilio called: `server.public_url` + path and query,
or — only with `[server] trust_forwarded = true` — rebuilt from X-Forwarded-Proto/Host.
A request that fails the check is refused (403) and nothing is stored.

An inbound text becomes a conversation exactly like a Kakao message (`receive_batched`).
Twilio's MessageSid is the message's fingerprint, so a resend is stored once. The answer
is empty TwiML: the bot's reply is not put in it but goes through the outbox, so the
"owner will answer" acknowledgement can wait and be cancelled when the owner answers first.

STOP (Twilio's keywords, or its OptOutType with Advanced Opt-Out) withdraws marketing
consent. Twilio answers those keywords itself on long codes and blocks further sends to
the number (error 21610), so dangol sends no confirmation of its own for them; a Korean
"수신거부", which Twilio does not know, is confirmed by SMS.

Photos in an MMS are fetched into the photo store once the message is stored
(`bot.customer_photos`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection

from bot import keys
from bot.customer_photos import fetch_photos
from bot.inbound import Arrival, Outcome, with_attachments
from bot.webhooks import NotStored, receive_in_time
from core.config import ShopConfig
from core.db import describe_failure
from core.delivery import move_message, store_event
from core.models import Consent, CustomerIdentity, Message
from providers.twilio import (
    InboundSms,
    StatusReport,
    TwilioProvider,
    parse_inbound,
    parse_status,
    status_advances,
)
from providers.twilio_signature import SIGNATURE_HEADER, is_valid

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
OPT_OUT_ERROR_SOURCE = "twilio:21610"


def _twiml(status: int = 200) -> web.Response:
    return web.Response(status=status, text=EMPTY_TWIML, content_type="text/xml")


def called_url(request: web.Request) -> str:
    """The absolute URL Twilio called, as it signed it."""
    server = request.app[keys.SETTINGS].server
    if server.trust_forwarded:
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        proto = proto or request.scheme
        host = host or request.headers.get("Host", request.host)
        return f"{proto}://{host}{request.raw_path}"
    return server.public_url + request.raw_path


async def _verified(
    request: web.Request,
) -> tuple[ShopConfig, TwilioProvider, dict[str, str]] | web.Response:
    """The shop, its Twilio provider and the signed form — or the refusal to answer."""
    app = request.app
    shop = app[keys.SETTINGS].shop(request.match_info["shop"])
    provider = None
    if shop is not None and shop.delivery.sms:
        found = app[keys.PROVIDERS].get(shop.delivery.sms)
        provider = found if isinstance(found, TwilioProvider) else None
    if shop is None or provider is None:
        return web.Response(status=404, text="no Twilio number is set up for this shop\n")
    try:
        form = await request.post()
    except (web.HTTPRequestEntityTooLarge, ValueError):
        return web.Response(status=413, text="too large\n")
    pairs = [(k, v) for k, v in form.items() if isinstance(v, str)]
    token = str(provider.options["auth_token"])
    if not is_valid(token, called_url(request), pairs, request.headers.get(SIGNATURE_HEADER)):
        log.warning("twilio: wrong or missing signature", extra={"shop": shop.slug})
        return web.Response(status=403, text="signature does not match\n")
    return shop, provider, dict(pairs)


# --------------------------------------------------------------------------- inbound SMS


async def inbound_sms(request: web.Request) -> web.Response:
    checked = await _verified(request)
    if isinstance(checked, web.Response):
        return checked
    shop, _, form = checked
    try:
        sms = parse_inbound(form)
    except ValueError as exc:
        log.warning("twilio sms: %s", exc, extra={"shop": shop.slug})
        return web.Response(status=400, text="not an inbound message\n")
    app = request.app
    shop_id = app[keys.SHOP_IDS][shop.slug]
    arrival = Arrival(
        shop=shop,
        shop_id=shop_id,
        channel="sms",
        identities=(("phone", sms.from_e164),),
        text=sms.body,
        digest=hashlib.sha256(f"{shop_id}\ntwilio:{sms.message_sid}".encode()).hexdigest(),
        received_at=app[keys.CLOCK].now(),
        extra=_extra(sms, form),
    )
    try:
        await receive_in_time(app, arrival, once_stored=_fetch_photos(app) if sms.media else None)
    except NotStored as exc:
        # A 5xx, never the empty TwiML: Twilio then knows the message did not arrive.
        log.error("twilio sms: message not stored: %s", exc, extra={"shop": shop.slug})
        return web.Response(status=503, text="not stored\n")
    return _twiml()


def _fetch_photos(app: web.Application) -> Callable[[Outcome], None]:
    """Once the message is stored: its photos, fetched in the background (a resend's were
    fetched with the original)."""

    def fetch(outcome: Outcome) -> None:
        if not outcome.duplicate:
            work = asyncio.ensure_future(fetch_photos(app, outcome.message_id))
            app[keys.BACKGROUND].track(work, "customer photos", interruptible=True)

    return fetch


def _extra(sms: InboundSms, form: dict[str, str]) -> dict[str, str]:
    extra = {"provider": "twilio", "message_sid": sms.message_sid, **with_attachments(sms.media)}
    if sms.opt_out:
        extra["opt_out"] = sms.opt_out
        by_type = bool(form.get("OptOutType"))
        extra["opt_out_source"] = "twilio:OptOutType" if by_type else f"keyword:{sms.body[:20]}"
        # Twilio answered STOP/START itself (default or Advanced Opt-Out): no second text.
        extra["opt_out_replied_by"] = "twilio"
    return extra


# --------------------------------------------------------------------------- status callbacks


async def status_callback(request: web.Request) -> web.Response:
    checked = await _verified(request)
    if isinstance(checked, web.Response):
        return checked
    shop, _, form = checked
    try:
        report = parse_status(form)
    except ValueError as exc:
        log.warning("twilio status: %s", exc, extra={"shop": shop.slug})
        return web.Response(status=400, text="not a status callback\n")
    app = request.app
    shop_id = app[keys.SHOP_IDS][shop.slug]
    try:
        changed = await app[keys.DATABASE].write(
            apply_status(shop_id, report, app[keys.CLOCK].now())
        )
    except Exception as exc:
        log.error(
            "twilio status: report not stored: %s", describe_failure(exc), extra={"shop": shop.slug}
        )
        return web.Response(status=503, text="not stored\n")
    if changed is not None:
        app[keys.LIVE].message_status(shop_id, changed[0], changed[1])
    return web.Response(status=204)


def apply_status(shop_id: int, report: StatusReport, now: datetime) -> Any:
    """A unit: move the message's status forward (never back); record 21610 as an opt-out.
    Returns (message id, new status) when the message changed, else None."""

    def unit(conn: Connection) -> tuple[int, str] | None:
        if report.status is not None:
            # Kept even when the message is not known yet: Twilio may report before the
            # outbox has recorded the send, which then catches up (core.delivery.catch_up).
            # A redelivered callback is the same event and changes nothing twice.
            fresh = store_event(
                conn,
                {
                    "shop_id": shop_id,
                    "provider": "twilio",
                    "event_id": f"{report.message_sid}:{report.twilio_status}",
                    "provider_message_id": report.message_sid,
                    "status": report.status,
                    "code": report.error_code,
                    "detail": report.reason or None,
                    "received_at": now,
                },
            )
            if not fresh:
                return None
        row = conn.execute(
            sa.select(Message.id, Message.status, Message.customer_id).where(
                Message.shop_id == shop_id, Message.provider_message_id == report.message_sid
            )
        ).first()
        customer_id = row.customer_id if row is not None else None
        if customer_id is None and report.to:
            customer_id = conn.execute(
                sa.select(CustomerIdentity.customer_id).where(
                    CustomerIdentity.shop_id == shop_id,
                    CustomerIdentity.kind == "phone",
                    CustomerIdentity.value == report.to,
                )
            ).scalar_one_or_none()
        if report.opted_out and customer_id is not None:
            _record_opt_out(conn, shop_id, customer_id, now)
        if row is None or report.status is None:
            return None
        if not status_advances(row.status, report.status):
            return None
        if not move_message(conn, row.id, row.status, report.status, at=now, reason=report.reason):
            return None
        return row.id, report.status

    return unit


def _record_opt_out(conn: Connection, shop_id: int, customer_id: int, now: datetime) -> None:
    """Marketing consent withdrawn — unless the latest word on it is already a withdrawal."""
    latest = conn.execute(
        sa.select(Consent.granted)
        .where(Consent.customer_id == customer_id, Consent.scope == "marketing")
        .order_by(Consent.created_at.desc(), Consent.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if latest is False:
        return
    conn.execute(
        sa.insert(Consent).values(
            shop_id=shop_id,
            customer_id=customer_id,
            scope="marketing",
            granted=False,
            source=OPT_OUT_ERROR_SOURCE,
            created_at=now,
        )
    )
