"""`POST /hooks/kakao/{shop}` — the Kakao i Open Builder skill.

verify (secret header, bot id) → parse → store and decide in one committed unit → answer.
Kakao gives us 5 seconds; we answer within the configured budget whatever the database
does: if the unit is not committed by then the customer gets a graceful reply and the unit
still commits when it can — unless writes are failing (a full disk): then, as when the
message could not be stored, the customer is asked to send it again. Every response body
is a valid SkillResponse, errors included, so the admin-center bot tester shows the
installer what is wrong.
"""

from __future__ import annotations

import json
import logging
import secrets

from aiohttp import web

from bot import keys
from bot.inbound import Arrival, digest_of_body
from bot.kakao import (
    PayloadError,
    QuickReply,
    SkillRequest,
    callback_ack,
    decode_skill_request,
    skill_response,
)
from bot.routing import Memo, default_quick_replies
from bot.webhooks import NotStored, receive_in_time
from providers.kakao_callback import is_kakao_callback_url

log = logging.getLogger(__name__)

SIMULATOR_HEADER = "X-Dangol-Simulator"


# Answers repeat word for word (handlers' texts are memoised per minute) and building a
# SkillResponse cleans every text and quick reply again, so the finished bodies are kept.
_BODIES = Memo(size=256)


def _answer(status: int, *texts: str, quick: tuple[QuickReply, ...] = ()) -> web.Response:
    key = (texts, tuple((q.label, q.message_text, _items(q.extra)) for q in quick))
    body = _BODIES.get(key, lambda: json.dumps(skill_response(texts, quick), ensure_ascii=False))
    return web.Response(status=status, text=body, content_type="application/json")


def _items(extra: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(extra.items()) if extra else ()


async def skill(request: web.Request) -> web.Response:
    app = request.app
    settings = app[keys.SETTINGS]
    texts = app[keys.SERVICES].texts
    metrics = app[keys.METRICS]
    shop = settings.shop(request.match_info["shop"])
    if shop is None or shop.kakao is None:
        metrics.skill_reply("unknown_shop")
        return _answer(404, texts.render("setup_problem", problem="unknown_shop"))

    given = request.headers.get(shop.kakao.secret_header, "")
    if not secrets.compare_digest(given.encode(), shop.kakao.skill_secret.reveal().encode()):
        metrics.skill_reply("unauthorized")
        log.warning("kakao skill: wrong or missing secret header", extra={"shop": shop.slug})
        return _answer(401, texts.render("setup_problem", problem="secret"))

    # Kakao sends `application/json;charset=UTF-8` (PROTOCOLS §1.1); anything else is not
    # a skill request, and is refused before it is read, let alone stored.
    if request.content_type != "application/json":
        metrics.skill_reply("not_json")
        log.warning(
            "kakao skill: content type %r is not application/json; refused",
            request.content_type[:60],
            extra={"shop": shop.slug},
        )
        return _answer(415, texts.render("not_understood"))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.skill_reply("too_large")
        log.warning("kakao skill: body over %d bytes refused", settings.server.max_body_bytes)
        return _answer(413, texts.render("too_long"))
    try:
        req = decode_skill_request(raw)
    except PayloadError as exc:
        metrics.skill_reply("bad_request")
        log.warning(
            "kakao skill: bad request: %s", exc, extra={"shop": shop.slug, "bytes": len(raw)}
        )
        return _answer(400, texts.render("not_understood"))
    if req.bot_id != shop.kakao.bot_id:
        metrics.skill_reply("wrong_bot")
        log.warning("kakao skill: bot id does not match the shop's", extra={"shop": shop.slug})
        return _answer(403, texts.render("setup_problem", problem="bot_id"))

    simulated = settings.server.simulator and request.headers.get(SIMULATOR_HEADER) == "1"
    arrival = Arrival(
        shop=shop,
        shop_id=app[keys.SHOP_IDS][shop.slug],
        channel="simulator" if simulated else "kakao",
        identities=_identities(req),
        text=req.utterance,
        digest=digest_of_body(app[keys.SHOP_IDS][shop.slug], raw),
        received_at=app[keys.CLOCK].now(),
        extra=req.client_extra,
    )
    callback_url = _callback_url(req, shop.slug)
    try:
        outcome = await receive_in_time(app, arrival, callback_url=callback_url)
    except Exception as exc:
        if isinstance(exc, NotStored):
            log.error("kakao skill: message not stored: %s", exc, extra={"shop": shop.slug})
        else:
            log.exception("kakao skill: could not store the message", extra={"shop": shop.slug})
        # The customer must not believe it arrived. Kakao would show a non-200 answer as its
        # own error message, so the honest text goes with 200.
        metrics.skill_reply("not_stored")
        return _answer(200, texts.render("not_stored", shop=shop))
    if outcome is None and callback_url is not None:
        # The block has Kakao's AI-chatbot callback: its waiting text shows now and the
        # real answer follows through the outbox once the message is committed.
        metrics.skill_reply("callback")
        body = json.dumps(callback_ack(texts.render("callback_wait")), ensure_ascii=False)
        return web.Response(text=body, content_type="application/json")
    if outcome is None:
        metrics.skill_reply("graceful")
        return _answer(200, texts.render("received_later"), quick=default_quick_replies(shop))
    metrics.skill_reply(outcome.reply.handler.split(".")[0] or "unknown")
    held = tuple(
        texts.render("mailbox", body=body, sender=sender, shop=shop)
        for sender, body in outcome.mailbox
    )
    # A held question (a survey, a reminder) is answered by the next tap: its buttons win.
    quick = outcome.mailbox_quick or outcome.reply.quick_replies
    return _answer(200, *held, *outcome.reply.texts, quick=quick)


def _callback_url(req: SkillRequest, shop: str) -> str | None:
    """The request's one-time callback URL, if it is really Kakao's: a forged payload must
    not make us POST anywhere else (PROTOCOLS §1.5)."""
    if req.callback_url is None:
        return None
    if not is_kakao_callback_url(req.callback_url):
        log.warning(
            "kakao skill: callbackUrl is not bot-api.kakao.com; ignored", extra={"shop": shop}
        )
        return None
    return req.callback_url


def _identities(req: SkillRequest) -> tuple[tuple[str, str], ...]:
    found = [("kakao_bot_user", req.user.bot_user_key)]
    if req.user.plusfriend_user_key:
        found.append(("kakao_plusfriend", req.user.plusfriend_user_key))
    if req.user.app_user_id:
        found.append(("kakao_app_user", req.user.app_user_id))
    return tuple(found)
