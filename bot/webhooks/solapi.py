"""`POST /hooks/solapi/{shop}/{token}` — SOLAPI delivery reports (PROTOCOLS.md §2.3).

SOLAPI posts a JSON array of reports to the URL pasted into its console; the shop's secret
token in the path is all that authenticates it (`[shops.solapi] webhook_token_env`). An
unknown shop, a shop without the setting and a wrong token all answer the same 404.

verify → parse (a malformed body is a 400 with nothing stored, and SOLAPI retries) →
store and apply, committed together with every other request's reports waiting for the same
commit (`core.delivery.apply_reports_batched`) → 200 ``{"ok": true}``.
A report about a message we do not know is still stored and still answered 200: SOLAPI
would otherwise retry it for nothing.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from bot import keys
from core.db import describe_failure
from core.delivery import apply_reports_batched
from providers.base import RejectedWebhook
from providers.solapi import parse_report

log = logging.getLogger(__name__)

PROVIDER = "solapi"
# Compared against when the shop has no token, so every refusal costs the same.
_NO_TOKEN = secrets.token_urlsafe(32).encode()


def _not_found() -> web.Response:
    return web.json_response({"ok": False, "error": "not found"}, status=404)


async def report(request: web.Request) -> web.Response:
    app = request.app
    settings = app[keys.SETTINGS]
    shop = settings.shop(request.match_info["shop"])
    expected = (
        shop.solapi.webhook_token.reveal().encode()
        if shop is not None and shop.solapi is not None
        else _NO_TOKEN
    )
    given = request.match_info["token"].encode()
    if not secrets.compare_digest(given, expected) or shop is None or shop.solapi is None:
        log.warning("solapi report: unknown shop or wrong token; refused")
        return _not_found()

    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        log.warning(
            "solapi report: body over %d bytes refused",
            settings.server.max_body_bytes,
            extra={"shop": shop.slug},
        )
        return web.json_response({"ok": False, "error": "too large"}, status=413)
    try:
        reports = parse_report(raw)
    except RejectedWebhook as exc:
        # The reason never quotes the body; describe() masks phone numbers all the same.
        log.warning(
            "solapi report: rejected: %s",
            exc.describe(),
            extra={"shop": shop.slug, "bytes": len(raw)},
        )
        return web.json_response({"ok": False, "error": "malformed report"}, status=400)

    shop_id = app[keys.SHOP_IDS][shop.slug]
    work = apply_reports_batched(shop_id, PROVIDER, reports, app[keys.CLOCK].now())
    try:
        changed = await app[keys.DATABASE].write(work)
    except Exception as exc:
        # 503: SOLAPI sends the reports again later.
        log.error(
            "solapi report: could not store %d reports: %s",
            len(reports),
            describe_failure(exc),
            extra={"shop": shop.slug},
        )
        return web.json_response({"ok": False, "error": "not stored"}, status=503)
    log.info(
        "solapi report: %d received, %d messages changed",
        len(reports),
        len(changed),
        extra={"shop": shop.slug},
    )
    return web.json_response({"ok": True})
