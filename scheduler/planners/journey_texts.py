"""A due step's message: its values, its text (core/templates/messages/journey/<step>.j2),
its photos, its quick replies and its AlimTalk variables.

The templates get every value below (each documents those it uses); an AlimTalk template
gets the plain ones (`ALIMTALK_VALUES`) under the names the shop's config maps its
#{variables} to (`[shops.journey.alimtalk.<step>] variables`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from core import tiers
from core.config import ShopConfig
from core.texts import Texts, korean_day, korean_duration, korean_moment
from providers.sms_text import SUBJECT_MAX_BYTES, cut_bytes
from scheduler.planners.journey_reads import Due, JobPhoto, Known

log = logging.getLogger("dangol.journey")

PHASES = {"before": "작업 전", "during": "작업 중", "after": "작업 후"}

# The values an AlimTalk template's #{variables} may be filled with.
ALIMTALK_VALUES = (
    "customer_name",
    "shop",
    "service",
    "date",
    "window",
    "when",
    "duration",
    "address",
    "prepare",
    "warranty",
    "eta",
    "phase",
    "caption",
    "tips",
    "tip",
    "done_date",
    "done_when",
    "link",
    "tier",
    "tier_benefit",
)


@dataclass(frozen=True, slots=True)
class Composed:
    text: str
    subject: str | None  # the LMS title, within 40 bytes
    attachments: list[dict[str, Any]]
    quick_replies: list[dict[str, Any]]
    plain: dict[str, str]  # ALIMTALK_VALUES, as text


def compose(
    texts: Texts,
    due: Due,
    shop: ShopConfig,
    known: Known,
    *,
    link: str,
    digits: bool,
    now: datetime,
) -> Composed:
    """Render the step's message. `link`: the survey page, for the survey steps; `digits`:
    the customer answers by SMS (no buttons reach them)."""
    photos = _attached(due, known)
    values = step_values(due, shop, photos, link=link, digits=digits, now=now)
    text, subject = texts.render_with_subject(f"journey/{due.step}", **values)
    return Composed(
        text=text,
        subject=cut_bytes(subject, SUBJECT_MAX_BYTES).rstrip() if subject else None,
        attachments=[p.attachment() for p in photos],
        quick_replies=[] if digits else quick_replies(due),
        plain=plain_values(values),
    )


def step_values(
    due: Due,
    shop: ShopConfig,
    photos: list[JobPhoto],
    *,
    link: str,
    digits: bool,
    now: datetime,
) -> dict[str, Any]:
    """Every value a journey template may use (each template's comment lists its own)."""
    zone = shop.timezone
    service = shop.service(due.service)
    start, end = due.starts_at.astimezone(zone), due.ends_at.astimezone(zone)
    today = now.astimezone(zone).date()
    done = (due.done_at or now).astimezone(zone).date()
    payload = due.payload
    eta = _moment(payload.get("eta"))
    day = korean_day(start.date())
    window = _window(start, end)
    tips = [str(t) for t in payload.get("tips", []) if str(t).strip()]
    return {
        "shop": shop,
        "customer_name": (due.customer_name or "").strip(),
        "service": due.service_name,
        "date": day,
        "day": _relative_day(start.date(), today),
        "window": window,
        "when": f"{day} {window}",
        "duration": korean_duration(timedelta(minutes=service.duration_minutes)) if service else "",
        "address": due.address.strip(),
        "prepare": service.prepare.strip() if service else "",
        "warranty": service.warranty.strip() if service else "",
        "rescheduled": due.revision > 1,
        "eta": korean_moment(eta.astimezone(zone), today) if eta else "",
        "phase": PHASES.get(str(payload.get("phase", "")), "작업"),
        "caption": str(payload.get("caption", "")).strip(),
        "tips": tips,
        "tip": str(payload.get("tip", "")).strip(),
        "photos": _which_photos(photos),
        "done_date": korean_day(done),
        "done_when": _done_when(done, today),
        "review_links": list(shop.journey.review_links.items()),
        "link": link,
        "digits": digits,
        "tier": tiers.name(due.customer_tier),  # 골드 / 실버 / 브론즈, or ""
        "tier_benefit": shop.tiers.benefit(due.customer_tier),
    }


def plain_values(values: Mapping[str, Any]) -> dict[str, str]:
    """The values an AlimTalk template may use, as text."""
    plain = {name: values[name] for name in ALIMTALK_VALUES if isinstance(values[name], str)}
    plain["shop"] = values["shop"].name
    plain["tips"] = "\n".join(values["tips"])
    if not plain["link"] and values["review_links"]:
        plain["link"] = "\n".join(url for _, url in values["review_links"])
    return plain


def alimtalk_variables(
    shop: ShopConfig, step: str, plain: Mapping[str, str]
) -> tuple[str, dict[str, str]] | None:
    """The step's approved AlimTalk template and its variables filled, or None when the
    shop has none for it (the step then takes the next path of the chain)."""
    approved = shop.journey.alimtalk.get(step)
    if approved is None:
        return None
    filled: dict[str, str] = {}
    for variable, name in approved.variables.items():
        if name not in plain:
            log.warning(
                "journey: [shops.journey.alimtalk.%s] %s names %r, not one of %s",
                step,
                variable,
                name,
                ", ".join(ALIMTALK_VALUES),
                extra={"shop": shop.slug},
            )
        filled[variable] = plain.get(name, "")
    return approved.template, filled


def quick_replies(due: Due) -> list[dict[str, Any]]:
    """The buttons a Kakao customer answers with (stored like the bot's own replies')."""
    job = str(due.job_id)
    if due.step in ("survey", "survey_reminder"):
        return [
            {
                "label": f"{n}점",
                "message_text": f"{n}점",
                "extra": {"journey": "survey", "job_id": job, "score": str(n)},
            }
            for n in range(1, 6)
        ]
    if due.step == "reminder":
        return [
            {
                "label": label,
                "message_text": label,
                "extra": {"journey": "reminder", "job_id": job, "answer": answer},
            }
            for label, answer in (("확인", "confirmed"), ("일정 변경", "change_requested"))
        ]
    return []


def _attached(due: Due, known: Known) -> list[JobPhoto]:
    """The step's photos: the one added for a photo step; for the completion the latest
    after and before photos, the after first (a text message carries only the first)."""
    if due.step == "photo":
        photo_id = due.payload.get("photo_id")
        photo = known.photos.get(photo_id) if isinstance(photo_id, int) else None
        return [photo] if photo is not None else []
    if due.step != "completion":
        return []
    found = known.job_photos.get(due.job_id, [])
    latest = {p.phase: p for p in found}  # oldest first: the last of each phase wins
    return [latest[phase] for phase in ("after", "before") if phase in latest]


def _which_photos(photos: list[JobPhoto]) -> str:
    """ "before_after", "after", "before" or "": what the completion's photos show."""
    phases = {p.phase for p in photos}
    if phases >= {"before", "after"}:
        return "before_after"
    return "after" if "after" in phases else "before" if "before" in phases else ""


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def _window(start: datetime, end: datetime) -> str:
    """ "14:00~16:00"; a window into the next day names its end's day."""
    if end.date() == start.date():
        return f"{start:%H:%M}~{end:%H:%M}"
    return f"{start:%H:%M}~{korean_day(end.date())} {end:%H:%M}"


def _relative_day(day: date, today: date) -> str:
    if day == today:
        return "오늘"
    if day == today + timedelta(days=1):
        return "내일"
    return ""


def _done_when(done: date, today: date) -> str:
    """When the job was done, to precede 받으신: "어제", "3일 전에", "지난주에" …"""
    days = (today - done).days
    if days <= 0:
        return "오늘"
    if days == 1:
        return "어제"
    if days < 7:
        return f"{days}일 전에"
    if days < 14:
        return "지난주에"
    return f"{korean_day(done)}에"
