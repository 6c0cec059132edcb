"""The demo customer's chat page: `GET /simulator`, `POST /simulator/api/say` and
`GET /simulator/api/updates` (the owner's replies and the journey's messages — a booking
confirmation, a survey — photos and quick replies included, pushed to the page as they are
sent).

The browser never sees a skill secret. It posts plain text here; we build the SkillPayload
Kakao would send (PROTOCOLS §1.2) and POST it over HTTP to our own `/hooks/kakao/{shop}`
with the shop's secret header, so the simulator exercises exactly the path real traffic
takes — verification, parsing, storage, the time budget — and shows what Kakao would get.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from bot import keys
from bot.live import Closed, TooManySubscribers
from bot.photos.records import public_path
from bot.photos.store import is_stored_name
from bot.webhooks.kakao import SIMULATOR_HEADER
from core.config import ShopConfig
from core.models import CustomerIdentity, Message

STATIC_DIR = Path(__file__).parent / "static"
USER_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_TEXT = 2000
# Kakao drops a skill answer that takes longer than 5 s; the simulator gives up at the same point.
KAKAO_TIMEOUT = aiohttp.ClientTimeout(total=5)
UPDATES_WAIT = 20.0  # a long poll for the owner's replies answers within this many seconds
UPDATES_MAX = 50

# The page loads nothing from elsewhere and runs no inline script: customer text is untrusted.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Answers to the page's own script; the page shows them as a note in the chat.
ERRORS = {
    "not_json": "요청 형식이 올바르지 않아요(JSON 객체가 필요해요).",
    "unknown_shop": "카카오 채널이 설정된 매장을 찾지 못했어요.",
    "bad_user": "고객 식별값이 올바르지 않아요. '새 고객으로 시작'을 눌러 주세요.",
    "empty_text": "메시지를 입력해 주세요.",
    "long_text": f"메시지는 {MAX_TEXT}자까지 보낼 수 있어요.",
    "bad_extra": "extra는 문자열 값만 가진 객체이거나 null이어야 해요.",
    "unreachable": "스킬 서버에 연결하지 못했어요.",
    "timeout": "5초 안에 답이 오지 않았어요. 카카오라면 이 응답을 버려요.",
    "bad_response": "스킬 서버의 응답이 JSON이 아니에요.",
}

_templates = Environment(
    loader=PackageLoader("bot", "templates"),
    autoescape=select_autoescape(["html"]),
)


def setup(app: web.Application) -> None:
    """Register the simulator's page, its API and its static files."""
    app.router.add_get("/simulator", page, name="simulator")
    app.router.add_post("/simulator/api/say", say, name="simulator_say")
    app.router.add_get("/simulator/api/updates", updates, name="simulator_updates")
    # append_version: URLs carry a hash of the file, so a new release is never served stale.
    app.router.add_static(
        "/simulator/static/", STATIC_DIR, name="simulator_static", append_version=True
    )


def _kakao_shops(app: web.Application) -> list[ShopConfig]:
    return [s for s in app[keys.SETTINGS].shops if s.kakao is not None]


async def page(request: web.Request) -> web.Response:
    static = request.app.router["simulator_static"]
    html = _templates.get_template("simulator/index.html").render(
        shops=[{"slug": s.slug, "name": s.name} for s in _kakao_shops(request.app)],
        css_url=static.url_for(filename="simulator.css"),
        js_url=static.url_for(filename="simulator.js"),
        say_url=request.app.router["simulator_say"].url_for(),
        updates_url=request.app.router["simulator_updates"].url_for(),
    )
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


def _error(status: int, code: str) -> web.Response:
    return web.json_response(
        {"error": code, "message": ERRORS[code]},
        status=status,
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
    )


def _is_string_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


async def say(request: web.Request) -> web.Response:
    """Relay one customer utterance to the shop's skill endpoint; return what it answered."""
    # Requiring JSON keeps other sites' plain forms from posting here (they cannot set it).
    if request.content_type != "application/json":
        return _error(415, "not_json")
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # also too deep, or an integer past 4,300 digits
        return _error(400, "not_json")
    if not isinstance(body, dict):
        return _error(400, "not_json")

    slug = body.get("shop")
    shop = request.app[keys.SETTINGS].shop(slug) if isinstance(slug, str) else None
    if shop is None or shop.kakao is None:
        return _error(404, "unknown_shop")
    user = body.get("user")
    if not isinstance(user, str) or not USER_KEY.fullmatch(user):
        return _error(400, "bad_user")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return _error(400, "empty_text")
    if len(text.strip()) > MAX_TEXT:
        return _error(400, "long_text")
    extra = body.get("extra")
    if extra is not None and not _is_string_map(extra):
        return _error(400, "bad_extra")

    url = _own_skill_url(request, shop.slug)
    if url is None:
        return _error(502, "unreachable")
    payload = skill_payload(shop, user, text.strip(), extra)
    headers = {
        shop.kakao.secret_header: shop.kakao.skill_secret.reveal(),
        SIMULATOR_HEADER: "1",
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    try:
        async with request.app[keys.HTTP].post(
            url,
            data=json.dumps(payload, ensure_ascii=False).encode(),
            headers=headers,
            timeout=KAKAO_TIMEOUT,
        ) as resp:
            status, raw = resp.status, await resp.read()
    except TimeoutError:
        return _error(504, "timeout")
    except aiohttp.ClientError:
        return _error(502, "unreachable")
    elapsed_ms = (time.perf_counter() - started) * 1000
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        return _error(502, "bad_response")
    return web.json_response(
        {"status": status, "elapsed_ms": round(elapsed_ms, 1), "response": answer},
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
    )


def _owner_replies(
    shop_id: int, user: str, after: int | None
) -> sa.Select[int, str, datetime, dict[str, Any], str]:
    """What is pushed to this simulated customer (known by botUserKey): the owner's replies
    and the bot's own messages that were not answers (the journey's)."""
    ident = CustomerIdentity
    stmt = (
        sa.select(Message.id, Message.body, Message.created_at, Message.payload, Message.sender)
        .join(ident, ident.customer_id == Message.customer_id)
        .where(
            ident.shop_id == shop_id,
            ident.kind == "kakao_bot_user",
            ident.value == user,
            Message.shop_id == shop_id,
            Message.direction == "out",
            Message.sender.in_(("owner", "bot")),
            Message.path == "simulator",
        )
    )
    if after is None:  # where to start: the newest one so far
        return stmt.order_by(Message.id.desc()).limit(1)
    return stmt.where(Message.id > after).order_by(Message.id).limit(UPDATES_MAX)


async def updates(request: web.Request) -> web.Response:
    """`?shop=&user=&after=<message id>`: the owner's replies since `after`, oldest first.

    Without `after` it answers only where to start (`last`). With `wait=1` it holds the
    request until a reply comes or `UPDATES_WAIT` seconds pass (a long poll fed by the live
    hub), so a reply sent from the console shows up on the page at once.
    """
    slug = request.query.get("shop", "")
    shop = request.app[keys.SETTINGS].shop(slug)
    if shop is None or shop.kakao is None:
        return _error(404, "unknown_shop")
    user = request.query.get("user", "")
    if not USER_KEY.fullmatch(user):
        return _error(400, "bad_user")
    raw_after = request.query.get("after", "")
    after = int(raw_after) if raw_after.isdigit() and len(raw_after) < 18 else None
    shop_id = request.app[keys.SHOP_IDS][shop.slug]
    database = request.app[keys.DATABASE]

    async def fetch() -> list[Any]:
        async with database.read() as conn:
            return list((await conn.execute(_owner_replies(shop_id, user, after))).all())

    found = await fetch()
    if after is not None and not found and request.query.get("wait") == "1":
        found = await _wait_for_reply(request, shop_id, fetch)
    if after is None:
        return web.json_response({"messages": [], "last": found[0].id if found else 0})
    return web.json_response(
        {
            "messages": [
                {
                    "id": r.id,
                    "text": r.body,
                    "at": r.created_at.isoformat(),
                    "photos": _photo_urls(r.payload),
                    "from": r.sender,
                    "quick_replies": _quick_replies(r.payload),
                }
                for r in found
            ],
            "last": found[-1].id if found else after,
        },
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False),
    )


def _photo_urls(payload: Any) -> list[str]:
    """The customer-facing URLs of a reply's photos, as Kakao or an MMS would show them."""
    attachments = payload.get("attachments") if isinstance(payload, dict) else None
    urls: list[str] = []
    for a in attachments if isinstance(attachments, list) else []:
        name = str(a.get("url", "")).removeprefix("/p/") if isinstance(a, dict) else ""
        if is_stored_name(name):
            urls.append(public_path(name))
    return urls


def _quick_replies(payload: Any) -> list[dict[str, Any]]:
    """A pushed message's buttons, shaped as a skill response's (label, messageText, extra)."""
    found = payload.get("quick_replies") if isinstance(payload, dict) else None
    return [
        {
            "label": q["label"],
            "messageText": q.get("message_text") or q["label"],
            "extra": q.get("extra") or {},
        }
        for q in (found if isinstance(found, list) else [])
        if isinstance(q, dict) and isinstance(q.get("label"), str)
    ]


async def _wait_for_reply(request: web.Request, shop_id: int, fetch: Any) -> list[Any]:
    hub = request.app[keys.LIVE]
    try:
        subscription = hub.subscribe(shop_id, kind="simulator")
    except TooManySubscribers:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + UPDATES_WAIT
    with subscription:
        found: list[Any] = await fetch()  # a reply may have landed before we subscribed
        while not found:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                event = await subscription.next(within=left)
            except Closed:
                break
            if event is None:
                break
            if event.get("type") in ("message", "resync") and event.get("sender") != "customer":
                found = await fetch()
    return found


def _own_skill_url(request: web.Request, slug: str) -> str | None:
    """The skill URL on the very socket this request came in on.

    Not `request.host`: the Host header is the client's to choose, and the relay carries the
    shop's skill secret, so a forged Host would hand the secret to any server named in it.
    The local address of the accepted connection is ours, and works on any port.
    """
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return None  # e.g. a Unix socket; the demo always listens on TCP
    host, port = sockname[0], sockname[1]
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"http://{host}:{port}/hooks/kakao/{slug}"


def _object_id(*parts: str) -> str:
    """A stable 24-hex id shaped like Kakao's block/bot ids."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def skill_payload(
    shop: ShopConfig, user: str, text: str, extra: dict[str, str] | None
) -> dict[str, Any]:
    """The SkillPayload Kakao sends when a channel friend types `text` (or taps a quick reply
    whose `extra` it was), shaped like the payloads recorded in tests/payloads/kakao."""
    assert shop.kakao is not None
    block = {"id": _object_id(shop.slug, "fallback"), "name": "폴백 블록"}
    # A tapped quick reply always sends an object (maybe empty); typed text sends null.
    tapped = extra is not None
    trigger: dict[str, Any] = {"type": "QUICKREPLY_BUTTON_MESSAGE" if tapped else "TEXT_INPUT"}
    if tapped:
        trigger["referrerBlock"] = block
    plusfriend = "sim-" + hashlib.sha256(user.encode()).hexdigest()[:10]
    return {
        "intent": dict(block),
        "userRequest": {
            "timezone": "Asia/Seoul",
            "block": dict(block),
            "utterance": text,
            "lang": "ko",
            "params": {"surface": "Kakaotalk.plusfriend"},
            "user": {
                "id": user,
                "type": "botUserKey",
                "properties": {
                    "botUserKey": user,
                    "plusfriendUserKey": plusfriend,
                    "isFriend": True,
                },
            },
        },
        "bot": {"id": shop.kakao.bot_id, "name": f"{shop.name} 상담봇"},
        "action": {
            "id": _object_id(shop.slug, "skill"),
            "name": "dangol-skill",
            "params": {},
            "detailParams": {},
            "clientExtra": dict(extra or {}),
        },
        "contexts": [],
        "flow": {"trigger": trigger},
    }
