"""Twilio webhooks: inbound SMS and delivery status callbacks (PROTOCOLS.md §5).

    POST /hooks/twilio/{shop}/sms     the shop's number received a text
    POST /hooks/twilio/{shop}/status  a message we sent changed state (StatusCallback)

Both check `X-Twilio-Signature` with the auth token of the provider named by the shop's
`[shops.delivery] sms`, over the URL Twilio called: `server.public_url` + path and query,
or — only with `[server] trust_proxy = true` — the URL the proxy received (`bot.forwarded`).
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

from aiohttp import web

from bot import keys
from bot.customer_photos import fetch_photos
from bot.inbound import Arrival, Outcome, with_attachments
from bot.webhooks import NotStored, receive_in_time
from core.config import ShopConfig
from core.db import describe_failure
from core.delivery import apply_reports_batched
from providers.twilio import InboundSms, TwilioProvider, parse_inbound, parse_status
from providers.twilio_signature import SIGNATURE_HEADER, is_valid

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
PROVIDER = "twilio"


def _twiml(status: int = 200) -> web.Response:
    return web.Response(status=status, text=EMPTY_TWIML, content_type="text/xml")


def called_url(request: web.Request) -> str:
    """The absolute URL Twilio called, as it signed it: behind a trusted proxy the one the
    proxy received (`bot.forwarded`), else `public_url` — a client picks its Host header."""
    server = request.app[keys.SETTINGS].server
    if server.trust_proxy:
        return f"{request.scheme}://{request.host}{request.raw_path}"
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
    """One report, applied where every vendor's are (`core.delivery`): forward only,
    21610 recorded as an opt-out. Kept even when the message is not known yet: Twilio may
    report before the outbox has recorded the send, which then catches up."""
    checked = await _verified(request)
    if isinstance(checked, web.Response):
        return checked
    shop, _, form = checked
    try:
        report = parse_status(form)
    except ValueError as exc:
        log.warning("twilio status: %s", exc, extra={"shop": shop.slug})
        return web.Response(status=400, text="not a status callback\n")
    if report is None:  # receiving/received: not about a message we sent
        return web.Response(status=204)
    app = request.app
    shop_id = app[keys.SHOP_IDS][shop.slug]
    work = apply_reports_batched(shop_id, PROVIDER, [report], app[keys.CLOCK].now())
    try:
        await app[keys.DATABASE].write(work)
    except Exception as exc:
        log.error(
            "twilio status: report not stored: %s", describe_failure(exc), extra={"shop": shop.slug}
        )
        return web.Response(status=503, text="not stored\n")
    return web.Response(status=204)
