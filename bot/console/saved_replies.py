"""Saved replies: canned answers with variables, and the page that manages them.

Owner and staff may use them; only the owner adds, changes or deletes them.

A saved reply's body is a Jinja template written by the shop (`{{ customer.name }}님,
{{ shop.name }}입니다`), rendered in a sandbox: no attribute or method a template could
use to reach into Python, no huge repetitions, and a variable that does not exist renders
as nothing instead of failing — a typo must never stop a reply from going out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from bot import keys
from bot.console import changes
from bot.console.changes import saved_replies as saved_reply_changes
from bot.console.layout import clean_text, field, now, object_id, page, shop_of
from bot.console.middleware import see_other
from bot.console.queries.customer import CustomerView
from bot.console.queries.header import read_header
from bot.console.queries.saved_replies import SavedReplyView, read_saved_replies
from bot.console.viewer import current, require_owner
from core import tiers
from core.config import ShopConfig
from core.models import SavedReply

log = logging.getLogger(__name__)

TITLE_MAX = 60
BODY_MAX = 1000
RENDERED_MAX = 2000
HOME = "/console/saved-replies"

# The variables a saved reply can use, as the page offers them (chips that insert them).
VARIABLES = (
    ("customer.name", "고객 이름"),
    ("customer.tier", "등급"),
    ("customer.tier_benefit", "등급 혜택"),
    ("shop.name", "가게 이름"),
    ("shop.phone", "가게 전화번호"),
)
_LABELS = dict(VARIABLES)
_VARIABLE = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")

# What `dangol demo` starts with, so the composer's picker has something to show.
DEMO_REPLIES = (
    ("인사", "안녕하세요 {{ customer.name }}님, {{ shop.name }}입니다. 무엇을 도와드릴까요?"),
    (
        "방문 일정",
        "{{ customer.name }}님, 내일 오전 10시에 방문드려도 될까요? 편하신 시간을 알려 주세요.",
    ),
    ("사진 요청", "정확히 확인하려고 해요. 고장 난 곳 사진을 한두 장 보내 주실 수 있을까요?"),
    (
        "작업 완료",
        "작업 마쳤습니다. 이용해 주셔서 감사합니다! 문제 있으면 {{ shop.phone }}로 연락 주세요.",
    ),
)


class _Sandbox(SandboxedEnvironment):
    """The sandbox, minus the operators that could build a gigabyte string in one step."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            raise SecurityError("powers are not allowed in saved replies")
        sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
        counts = [v for v in (left, right) if isinstance(v, int)]
        if sizes and counts and sizes[0] * max(counts[0], 0) > RENDERED_MAX:
            raise SecurityError("the repetition is too long")
        return super().call_binop(context, operator, left, right)


_sandbox = _Sandbox(undefined=ChainableUndefined, autoescape=False)


class BadTemplate(ValueError):
    pass


def check_template(body: str) -> None:
    """Refuse a body that is not a valid template (saving it would only fail later)."""
    try:
        _sandbox.parse(body)
    except TemplateSyntaxError as exc:
        raise BadTemplate(f"line {exc.lineno}: {exc.message}") from exc


def variables(customer: CustomerView, shop: ShopConfig) -> dict[str, Any]:
    return {
        "customer": {
            "name": customer.name or "",
            # 골드 / 실버 / 브론즈, or "" before the first completed job (core/tiers.py).
            "tier": tiers.name(customer.tier),
            "tier_benefit": shop.tiers.benefit(customer.tier),
        },
        "shop": {"name": shop.name, "phone": shop.phone},
    }


def render_reply(body: str, values: dict[str, Any]) -> str:
    """The text to send; on a template error the body as written (the owner edits it)."""
    try:
        text = _sandbox.from_string(body).render(**values)
    except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
        log.info("saved reply did not render: %s", type(exc).__name__)
        return body
    return text[:RENDERED_MAX]


@dataclass(frozen=True)
class Choice:
    """A saved reply offered in a conversation's composer, rendered for its customer."""

    id: int
    title: str
    text: str


def choices(saved: list[SavedReplyView], customer: CustomerView, shop: ShopConfig) -> list[Choice]:
    values = variables(customer, shop)
    return [Choice(s.id, s.title, render_reply(s.body, values)) for s in saved]


def seed_demo_replies(shop_id: int, now: datetime) -> Callable[[sa.Connection], int]:
    """The demo's saved replies, for a shop that has none yet; how many were added."""

    def unit(conn: sa.Connection) -> int:
        has_some = conn.execute(
            sa.select(SavedReply.id).where(SavedReply.shop_id == shop_id).limit(1)
        ).first()
        if has_some:
            return 0
        conn.execute(
            sa.insert(SavedReply),
            [
                {"shop_id": shop_id, "title": t, "body": b, "created_at": now, "updated_at": now}
                for t, b in DEMO_REPLIES
            ],
        )
        return len(DEMO_REPLIES)

    return unit


def parts(body: str) -> list[tuple[str, str]]:
    """A body as the page shows it: ("text", …) runs and ("var", "고객 이름") for each known
    variable, so the owner reads words, not template syntax."""
    found: list[tuple[str, str]] = []
    at = 0
    for match in _VARIABLE.finditer(body):
        label = _LABELS.get(match.group(1))
        if label is None:
            continue
        if match.start() > at:
            found.append(("text", body[at : match.start()]))
        found.append(("var", label))
        at = match.end()
    if at < len(body):
        found.append(("text", body[at:]))
    return found


# --------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Problem:
    reply_id: int | None  # None: the "add" form
    code: str  # title_empty | title_long | body_empty | body_long | syntax
    title: str
    body: str
    detail: str = ""


def _validate(title: str, body: str) -> tuple[str | None, str]:
    if not title:
        return "title_empty", ""
    if len(title) > TITLE_MAX:
        return "title_long", ""
    if not body.strip():
        return "body_empty", ""
    if len(body) > BODY_MAX:
        return "body_long", ""
    try:
        check_template(body)
    except BadTemplate as exc:
        return "syntax", str(exc)
    return None, ""


async def _page(request: web.Request, problem: Problem | None = None) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    async with request.config_dict[keys.DATABASE].read() as conn:
        saved = await read_saved_replies(conn, viewer, shop.timezone)
        header = await read_header(conn, viewer, at, shop.timezone)
    return page(
        request,
        "saved_replies.html",
        viewer=viewer,
        header=header,
        status=400 if problem else 200,
        saved=saved,
        parts=parts,
        variables=VARIABLES,
        problem=problem,
        title_max=TITLE_MAX,
        body_max=BODY_MAX,
        nav="saved",
    )


async def index(request: web.Request) -> web.Response:
    return await _page(request)


async def _save(request: web.Request, reply_id: int | None) -> web.Response:
    viewer = require_owner(request)
    form = await request.post()
    title = " ".join(clean_text(field(form, "title")).split())
    body = clean_text(field(form, "body")).strip()
    code, detail = _validate(title, body)
    if code is not None:
        return await _page(request, Problem(reply_id, code, title, body, detail))
    unit = saved_reply_changes.save_reply(viewer, reply_id, title, body, now(request))
    try:
        saved_id = await request.config_dict[keys.DATABASE].write(unit)
    except changes.NotFound:
        raise web.HTTPNotFound from None
    return see_other(f"{HOME}#r-{saved_id}")


async def create(request: web.Request) -> web.Response:
    return await _save(request, None)


async def update(request: web.Request) -> web.Response:
    return await _save(request, object_id(request))


async def delete(request: web.Request) -> web.Response:
    viewer = require_owner(request)
    try:
        await request.config_dict[keys.DATABASE].write(
            saved_reply_changes.delete_reply(viewer, object_id(request), now(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    return see_other(HOME)
