"""`GET /s/{token}` shows the question; `POST /s/{token}` records the answer.

No login: the link is the key (bot/survey/links.py). An unknown link is 404 and an
expired one 410, with the same few words and nothing about whose link it was. The POST
must carry the form's token (an HMAC of the link's secret) and come from our own page —
its Origin, or without one its Referer, must be `server.public_url`'s (or the request's
own) — and is recorded by
`core.jobs.record_score` (channel "web"): the same unit the console uses, so a low score
opens the complaint, apologises and tells the owner as a chat answer does. Everything
shown is escaped (autoescape); the page loads nothing and runs no script.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from yarl import URL

from bot import keys
from bot.survey.links import SurveyLink, find_link, first_name, form_token, form_token_matches
from core.config import ShopConfig
from core.jobs import JobError, JobNotFound, ScoreAnswer, record_score
from core.jobs.survey import COMMENT_MAX
from core.texts import korean_day

_templates = Environment(
    loader=PackageLoader("bot", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)
# The stylesheet is included inline (survey/base.html); the CSP names it by its hash.
_CSS = _templates.get_template("survey/survey.css").render()
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

HEADERS = {
    # The stylesheet is inline and named by its hash: nothing else may load or run.
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    # The URL is the customer's key: it must not travel to the review sites in a Referer.
    # (Not no-referrer: a browser then sends "Origin: null" with the form, which we refuse.)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

GONE = "이 링크는 더 이상 쓸 수 없어요. 궁금한 점은 가게로 직접 연락해 주세요."
FOREIGN = "이 페이지에서 보낸 답이 아니에요. 받으신 링크를 다시 열어 주세요."
NO_SCORE = "1점부터 5점까지 하나를 골라 주세요."
LONG_COMMENT = f"하고 싶은 말씀은 {COMMENT_MAX}자까지 적을 수 있어요."


def _render(template: str, *, status: int = 200, **values: Any) -> web.Response:
    html = _templates.get_template(f"survey/{template}").render(**values)
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def _gone(status: int, message: str = GONE) -> web.Response:
    return _render("gone.html", status=status, title="만족도 조사", message=message)


async def _open(request: web.Request) -> tuple[SurveyLink, ShopConfig] | web.Response:
    """The link and its shop, or the page that says it cannot be used."""
    async with request.app[keys.DATABASE].read() as conn:
        link = await find_link(conn, request.match_info["token"])
    if link is None:
        return _gone(404)
    slug = next((s for s, i in request.app[keys.SHOP_IDS].items() if i == link.shop_id), None)
    shop = next((s for s in request.app[keys.SETTINGS].shops if s.slug == slug), None)
    if shop is None:  # the shop is no longer served here
        return _gone(404)
    if request.app[keys.CLOCK].now() >= link.expires_at(shop):
        return _gone(410)
    return link, shop


def _question(
    request: web.Request,
    link: SurveyLink,
    shop: ShopConfig,
    *,
    status: int = 200,
    chosen: int | None = None,
    comment: str = "",
    error: str | None = None,
) -> web.Response:
    return _render(
        "page.html",
        status=status,
        title=f"{shop.name} 만족도 조사",
        shop_name=shop.name,
        day=korean_day(link.day.astimezone(shop.timezone).date()),
        service=link.service,
        name=first_name(link.name),
        form_token=form_token(request.match_info["token"], link.step_id),
        chosen=chosen if chosen is not None else link.score,
        answered=link.score,
        comment=comment,
        error=error,
        comment_max=COMMENT_MAX,
    )


async def page(request: web.Request) -> web.Response:
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    link, shop = opened
    return _question(request, link, shop)


async def answer(request: web.Request) -> web.Response:
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    link, shop = opened
    if not from_our_page(request, request.app[keys.SETTINGS].server.public_url):
        return _gone(403, FOREIGN)
    form = await request.post()
    if not form_token_matches(form.get("form"), request.match_info["token"], link.step_id):
        return _gone(403, FOREIGN)

    raw_comment = form.get("comment")
    comment = raw_comment.replace("\r\n", "\n").strip() if isinstance(raw_comment, str) else ""
    score = _score(form.get("score"))
    if score is None or len(comment) > COMMENT_MAX:
        error = NO_SCORE if score is None else LONG_COMMENT
        return _question(
            request, link, shop, status=400, chosen=score, comment=comment, error=error
        )

    app = request.app
    shop_id = app[keys.SHOP_IDS][shop.slug]
    given = ScoreAnswer(shop_id, link.job_id, score, "web", comment=comment or None)
    try:
        recorded = await app[keys.DATABASE].write(
            record_score(shop, app[keys.SERVICES].texts, given, app[keys.CLOCK].now())
        )
    except (JobNotFound, JobError):  # the job is not the one the link was sent for any more
        return _gone(410)
    texts = app[keys.SERVICES].texts
    return _render(
        "thanks.html",
        title=f"{shop.name} 만족도 조사",
        shop_name=shop.name,
        score=recorded.score,
        apology=texts.render("survey_low_score", shop=shop) if recorded.low else None,
        review_links=[
            (label, url)
            for label, url in shop.journey.review_links.items()
            if url.startswith(("https://", "http://"))
        ],
    )


def _score(value: object) -> int | None:
    if isinstance(value, str) and value in ("1", "2", "3", "4", "5"):
        return int(value)
    return None


def from_our_page(request: web.Request, public_url: str) -> bool:
    """The form was sent by a page of ours: its Origin — or, when a browser sends none,
    its Referer — is `public_url`'s or the request's own (its Host, as bot.forwarded
    reads it behind a trusted proxy: the demo on another port). A foreign page cannot
    choose the Host its visitor's browser sends, so either is our page. With neither
    header (an old browser, a privacy setting) the form token alone decides; "Origin: null"
    or a foreign origin is refused."""
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        try:
            theirs = URL(value).origin()
            ours = {
                URL(public_url).origin(),
                URL.build(scheme=request.scheme, authority=request.host).origin(),
            }
        except ValueError:  # "null", or no URL at all
            return False
        return theirs in ours
    return True
