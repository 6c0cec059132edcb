"""What a survey link leads to, and what the page may say about the customer.

A link's secret is never stored: its SHA-256 is the `token_hash` of the journey step that
sent it (a 'survey' or its 'survey_reminder'), and the link works for
`shop.journey.survey_link_days` after that step's `sent_at`. The page shows the shop, the
service and its date, and the customer's given name only (`first_name`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from core.config import ShopConfig
from core.jobs import token_hash
from core.models import Customer, Job, JourneyStep, SurveyAnswer

# What core.jobs.new_link_token makes (43 characters), with room either side; anything
# else is not a link of ours and costs no query.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
SURVEY_STEPS = ("survey", "survey_reminder")


@dataclass(frozen=True)
class SurveyLink:
    step_id: int
    shop_id: int
    job_id: int
    service: str
    day: datetime  # when the work was done (or, failing that, booked for)
    name: str | None  # the customer's name as the shop keeps it: never shown whole
    sent_at: datetime
    score: int | None  # an answer already given
    comment: str | None

    def expires_at(self, shop: ShopConfig) -> datetime:
        return self.sent_at + timedelta(days=shop.journey.survey_link_days)


async def find_link(conn: AsyncConnection, token: str) -> SurveyLink | None:
    """The sent survey step whose link secret is `token`; None when there is none."""
    if not TOKEN_RE.fullmatch(token):
        return None
    row = (
        await conn.execute(
            sa.select(
                JourneyStep.id,
                JourneyStep.shop_id,
                JourneyStep.job_id,
                JourneyStep.sent_at,
                Job.service_name,
                sa.func.coalesce(Job.done_at, Job.starts_at).label("day"),
                Customer.name,
                SurveyAnswer.score,
                SurveyAnswer.comment,
            )
            .join(Job, Job.id == JourneyStep.job_id)
            .join(Customer, Customer.id == Job.customer_id)
            .outerjoin(SurveyAnswer, SurveyAnswer.job_id == Job.id)
            .where(
                JourneyStep.token_hash == token_hash(token),
                JourneyStep.step.in_(SURVEY_STEPS),
                JourneyStep.status == "sent",
                JourneyStep.sent_at.is_not(None),
            )
        )
    ).first()
    if row is None:
        return None
    return SurveyLink(
        step_id=row.id,
        shop_id=row.shop_id,
        job_id=row.job_id,
        service=row.service_name,
        day=row.day,
        name=row.name,
        sent_at=row.sent_at,
        score=row.score,
        comment=row.comment,
    )


# --------------------------------------------------------------------------- the name

_HANGUL = re.compile(r"[가-힣]{2,4}")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{0,29}")
# Two-syllable surnames: 남궁민수 is 민수 of the 남궁 family.
_DOUBLE_SURNAMES = frozenset(
    {"남궁", "제갈", "선우", "황보", "독고", "사공", "서문", "동방", "어금", "망절", "장곡"}
)


def first_name(name: str | None) -> str | None:
    """The given name the page may greet the customer by, or None ("고객님" then).

    A Korean name of 2–4 syllables loses its surname — 김민수 → 민수, 김 민수 → 민수,
    남궁민수 → 민수, 이훈 → 훈; a name in Latin letters keeps its first word (John Smith →
    John). Anything else — a nickname with a note ("2층 김사장님"), digits, a single
    syllable, mixed scripts — gives None: when the rule cannot tell, the page shows no name.
    """
    if not name:
        return None
    parts = name.split()
    joined = "".join(parts)
    if _HANGUL.fullmatch(joined):
        if len(parts) == 1:
            surname = 2 if len(joined) == 4 and joined[:2] in _DOUBLE_SURNAMES else 1
            return joined[surname:]
        if len(parts) == 2 and (len(parts[0]) == 1 or parts[0] in _DOUBLE_SURNAMES):
            return parts[1]  # "김 민수"
        return None
    if parts and all(_LATIN_WORD.fullmatch(p) for p in parts):
        return parts[0]
    return None


# --------------------------------------------------------------------------- the form

_FORM = b"dangol survey form:"


def form_token(link_token: str, step_id: int) -> str:
    """The token the page's form carries: an HMAC keyed by the link's secret, so a form
    answers only the link it was served for. There is no session (and no cookie) a foreign
    page could ride on; the POST's Origin is checked as well (bot/survey/views.py)."""
    message = _FORM + str(step_id).encode()
    return hmac.new(link_token.encode(), message, hashlib.sha256).hexdigest()


def form_token_matches(given: object, link_token: str, step_id: int) -> bool:
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), form_token(link_token, step_id).encode())
