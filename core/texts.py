"""Customer-facing texts: sandboxed Jinja templates under core/templates/messages/.

The words live in the templates; this module only supplies the environment and the small
Korean formatting helpers they use (dates, times, durations, particles). The output is plain
text for KakaoTalk and SMS, so nothing is HTML-escaped.

A shop may reword any message without touching code: `[server] templates_dir` names a
directory whose files shadow the packaged ones by path (`journey/confirmation.j2` replaces
core/templates/messages/journey/confirmation.j2). They run in the same sandbox, with the
same values and StrictUndefined; an override may still include the packaged original as
`dangol/<path>`. The settings check the names and the syntax when the file is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    StrictUndefined,
)
from jinja2.sandbox import SandboxedEnvironment

from core.availability import (
    Availability,
    closed_reason,
    is_open_at,
    next_opening,
    open_until,
    upcoming_closures,
)
from core.config import OpeningHours, ShopConfig

WEEKDAY_NAMES = ("월", "화", "수", "목", "금", "토", "일")
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_RIEUL = 8  # index of ㄹ among the final consonants
# How a trailing digit is read aloud, for the particle after a number or phone number.
_DIGIT_READINGS = "공일이삼사오육칠팔구"


PACKAGED = ("core", "templates/messages")
# Where an override finds the packaged original of any template: "dangol/journey/survey.j2".
PACKAGED_PREFIX = "dangol"


def _loader(*folders: str | Path | None) -> BaseLoader:
    """The first folder that has a template wins, then dangol's own; an override reaches
    the original as "dangol/<path>"."""
    packaged = PackageLoader(*PACKAGED)
    found = [FileSystemLoader(str(f)) for f in folders if f is not None]
    if not found:
        return packaged
    return ChoiceLoader(
        [*found, packaged, PrefixLoader({PACKAGED_PREFIX: PackageLoader(*PACKAGED)})]
    )


def _environment(loader: BaseLoader) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=loader,
        autoescape=False,  # plain text for KakaoTalk/SMS, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters.update(
        korean_day=korean_day,
        korean_moment=korean_moment,
        korean_duration=korean_duration,
        short_period=short_period,
        hours_summary=hours_summary,
        josa=josa,
        one_line=one_line,
    )
    env.globals.update(
        korean_day=korean_day,
        korean_moment=korean_moment,
        hours_summary=hours_summary,
        open_hours_summary=open_hours_summary,
        closed_days=closed_days,
        korean_list=korean_list,
        is_open_at=is_open_at,
        next_opening=next_opening,
        open_until=open_until,
        closed_reason=closed_reason,
        upcoming_closures=upcoming_closures,
    )
    return env


class Texts:
    """Renders the message templates by name ("ack", "hours", "journey/survey", …).

    `templates_dir`'s files (`[server] templates_dir`), if given, shadow the packaged ones;
    a text rendered for a shop (the `shop` value) with a `templates_dir` of its own reads
    that folder first — so every caller that names the shop gets its wording, and none has
    to choose."""

    def __init__(self, templates_dir: str | Path | None = None) -> None:
        self._templates_dir = templates_dir
        self._env = _environment(_loader(templates_dir))
        self._shop_envs: dict[str, SandboxedEnvironment] = {}

    def _env_for(self, values: dict[str, Any]) -> SandboxedEnvironment:
        shop = values.get("shop")
        folder = shop.templates_dir if isinstance(shop, ShopConfig) else None
        if folder is None:
            return self._env
        env = self._shop_envs.get(folder)
        if env is None:
            env = _environment(_loader(folder, self._templates_dir))
            self._shop_envs[folder] = env
        return env

    def render(self, name: str, **values: Any) -> str:
        """Render `messages/<name>.j2`; the result is stripped of surrounding whitespace."""
        return self._env_for(values).get_template(f"{name}.j2").render(**values).strip()

    def render_with_subject(self, name: str, **values: Any) -> tuple[str, str | None]:
        """Render `messages/<name>.j2` and read the subject it sets at its top level
        (`{% set subject = "…" %}`: an LMS title), None when it sets none."""
        module = self._env_for(values).get_template(f"{name}.j2").make_module(values)
        subject = getattr(module, "subject", None)
        return str(module).strip(), " ".join(str(subject).split()) if subject else None


def wait_values(shop: ShopConfig, availability: Availability, now: datetime) -> dict[str, Any]:
    """The values ack, followup, handoff and complaint take, from an assessment at `now`."""
    return {
        "shop": shop,
        "availability": availability,
        "local_now": now.astimezone(shop.timezone),
        "reply_from_local": availability.reply_from.astimezone(shop.timezone),
    }


# --------------------------------------------------------------------------- dates and times


def korean_day(d: date) -> str:
    """date(2026, 11, 23) → "11월 23일(월)"."""
    return f"{d.month}월 {d.day}일({WEEKDAY_NAMES[d.weekday()]})"


def korean_moment(dt_local: datetime, today: date) -> str:
    """ "15:30" today, "내일 09:00" tomorrow, else "11월 24일(화) 09:00"."""
    clock = dt_local.strftime("%H:%M")
    day = dt_local.date()
    if day == today:
        return clock
    if day == today + timedelta(days=1):
        return f"내일 {clock}"
    return f"{korean_day(day)} {clock}"


def korean_duration(span: timedelta) -> str:
    """Minutes rounded up ("7분"); from an hour on, rounded up to ten minutes ("약 1시간 30분")."""
    minutes = max(1, math.ceil(span.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes}분"
    minutes = math.ceil(minutes / 10) * 10
    hours, rest = divmod(minutes, 60)
    return f"약 {hours}시간 {rest}분" if rest else f"약 {hours}시간"


def short_period(period: tuple[date, date]) -> str:
    """(9/24, 9/26) → "9/24~9/26"; a single day → "12/25"."""
    first, last = period
    if first == last:
        return f"{first.month}/{first.day}"
    return f"{first.month}/{first.day}~{last.month}/{last.day}"


# --------------------------------------------------------------------------- opening hours


def hours_summary(shop: ShopConfig) -> str:
    """ "평일 09:00~18:00, 토요일 09:00~13:00, 일요일·공휴일 휴무"."""
    parts = [open_hours_summary(shop)] if open_hours_summary(shop) else []
    closed = closed_days(shop)
    if closed:
        parts.append("·".join(closed) + " 휴무")
    return ", ".join(parts)


def open_hours_summary(shop: ShopConfig) -> str:
    """Open days in runs of identical hours: "평일 09:00~18:00, 토요일 09:00~13:00"."""
    return ", ".join(
        f"{_days_label(days)} {hours.label()}"
        for days, hours in _runs(shop.hours)
        if hours is not None
    )


def closed_days(shop: ShopConfig) -> list[str]:
    """Weekly days off, then public holidays if the shop closes on them: ["일요일", "공휴일"]."""
    labels = [_days_label(days) for days, hours in _runs(shop.hours) if hours is None]
    if shop.closed_on_public_holidays:
        labels.append("공휴일")
    return labels


def _runs(
    week: Sequence[OpeningHours | None],
) -> list[tuple[list[int], OpeningHours | None]]:
    runs: list[tuple[list[int], OpeningHours | None]] = []
    for weekday, hours in enumerate(week):
        if runs and runs[-1][1] == hours:
            runs[-1][0].append(weekday)
        else:
            runs.append(([weekday], hours))
    return runs


def _days_label(days: list[int]) -> str:
    if days == [0, 1, 2, 3, 4]:
        return "평일"
    if days == [5, 6]:
        return "주말"
    if len(days) == 7:
        return "매일"
    if len(days) == 1:
        return f"{WEEKDAY_NAMES[days[0]]}요일"
    return f"{WEEKDAY_NAMES[days[0]]}~{WEEKDAY_NAMES[days[-1]]}요일"


# --------------------------------------------------------------------------- Korean particles


def josa(word: str, pair: str) -> str:
    """The particle that follows `word`: josa("추석 연휴", "으로/로") → "로".

    `pair` is "after a final consonant/after a vowel" ("은/는", "이/가", "과/와", "이라/라",
    "으로/로"); ㄹ takes the vowel form of 으로/로. A word whose sound we cannot tell gets the
    written fallback, "(으)로" or "은(는)".
    """
    with_batchim, without = pair.split("/")
    final = _final_consonant(word)
    if final is None:
        if with_batchim.endswith(without):
            return f"({with_batchim.removesuffix(without)}){without}"
        return f"{with_batchim}({without})"
    if final == 0 or (final == _RIEUL and with_batchim == "으로"):
        return without
    return with_batchim


def korean_list(words: Sequence[str]) -> str:
    """["일요일", "공휴일"] → "일요일과 공휴일"; three or more → "월요일, 일요일과 공휴일"."""
    if len(words) <= 1:
        return "".join(words)
    head = ", ".join(words[:-1])
    return f"{head}{josa(words[-2], '과/와')} {words[-1]}"


def _final_consonant(word: str) -> int | None:
    """0 for a final vowel, the jongseong index otherwise; None when we cannot tell."""
    stripped = word.rstrip()
    if not stripped:
        return None
    last = stripped[-1]
    if last.isdigit() and last.isascii():
        last = _DIGIT_READINGS[int(last)]
    code = ord(last)
    if _HANGUL_FIRST <= code <= _HANGUL_LAST:
        return (code - _HANGUL_FIRST) % 28
    return None


def one_line(text: str) -> str:
    """Collapse newlines and runs of spaces, for a one-line preview."""
    return " ".join(text.split())
