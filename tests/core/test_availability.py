"""The honest wait: opening hours, owner status, closures and Korean public holidays."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import KST, kst, make_settings, shop_table

from core.availability import (
    OwnerState,
    assess,
    busy_until,
    closed_reason,
    is_open_at,
    next_opening,
    open_until,
    upcoming_closures,
)
from core.config import ShopConfig
from core.texts import Texts, hours_summary

AVAILABLE = OwnerState("available")


def _shop(**overrides: object) -> ShopConfig:
    return make_settings(shops=[shop_table(**overrides)]).shops[0]


@pytest.fixture
def shop() -> ShopConfig:
    return make_settings().shops[0]


def test_open_and_available_answers_now(shop: ShopConfig) -> None:
    now = kst(2026, 11, 23, 10, 0)  # Monday
    a = assess(shop, AVAILABLE, now, timedelta(minutes=7))
    assert a.kind == "open"
    assert a.reply_from == now
    assert a.reply_from.tzinfo == UTC
    assert a.reason is None
    assert a.period is None
    assert a.median_reply == timedelta(minutes=7)
    assert a.target == timedelta(minutes=30)


def test_on_site_until_later_today(shop: ShopConfig) -> None:
    a = assess(shop, OwnerState("on_site", kst(2026, 11, 23, 15, 30)), kst(2026, 11, 23, 10, 0))
    assert a.kind == "owner_busy"
    assert a.reply_from == kst(2026, 11, 23, 15, 30)


def test_on_site_past_closing_moves_to_next_opening(shop: ShopConfig) -> None:
    a = assess(shop, OwnerState("on_site", kst(2026, 11, 23, 19, 0)), kst(2026, 11, 23, 10, 0))
    assert a.kind == "owner_busy"
    assert a.reply_from == kst(2026, 11, 24, 9, 0)


def test_on_site_past_saturday_closing_moves_to_monday(shop: ShopConfig) -> None:
    a = assess(shop, OwnerState("on_site", kst(2026, 11, 28, 14, 0)), kst(2026, 11, 28, 10, 0))
    assert a.reply_from == kst(2026, 11, 30, 9, 0)


@pytest.mark.parametrize("busy_until", [None, kst(2026, 11, 23, 9, 30)])
def test_on_site_without_a_future_end_counts_as_available(
    shop: ShopConfig, busy_until: datetime | None
) -> None:
    now = kst(2026, 11, 23, 10, 0)
    a = assess(shop, OwnerState("on_site", busy_until), now)
    assert a.kind == "open"
    assert a.reply_from == now


def test_owner_off_on_friday_answers_saturday_morning(shop: ShopConfig) -> None:
    a = assess(shop, OwnerState("off"), kst(2026, 11, 27, 10, 0))
    assert a.kind == "owner_off"
    assert a.reply_from == kst(2026, 11, 28, 9, 0)


def test_owner_off_on_saturday_answers_monday(shop: ShopConfig) -> None:
    a = assess(shop, OwnerState("off"), kst(2026, 11, 28, 9, 5))
    assert a.reply_from == kst(2026, 11, 30, 9, 0)


def test_friday_evening_is_closed_until_saturday(shop: ShopConfig) -> None:
    a = assess(shop, AVAILABLE, kst(2026, 11, 27, 19, 0))
    assert a.kind == "closed"
    assert a.reply_from == kst(2026, 11, 28, 9, 0)
    assert a.reason is None


def test_saturday_afternoon_is_closed_until_monday(shop: ShopConfig) -> None:
    a = assess(shop, OwnerState("on_site", kst(2026, 11, 28, 15, 0)), kst(2026, 11, 28, 14, 0))
    assert a.kind == "closed"  # the owner's status does not matter when the shop is closed
    assert a.reply_from == kst(2026, 11, 30, 9, 0)


def test_early_morning_waits_for_opening_the_same_day(shop: ShopConfig) -> None:
    a = assess(shop, AVAILABLE, kst(2026, 11, 24, 7, 45))
    assert a.kind == "closed"
    assert a.reply_from == kst(2026, 11, 24, 9, 0)


def test_chuseok_2026(shop: ShopConfig) -> None:
    a = assess(shop, AVAILABLE, kst(2026, 9, 24, 10, 0))  # Thursday, 추석 전날
    assert a.kind == "holiday"
    assert a.reason == "추석 연휴"
    assert a.period == (date(2026, 9, 24), date(2026, 9, 26))
    assert a.reply_from == kst(2026, 9, 28, 9, 0)  # Sunday closed, Monday opens


@pytest.mark.parametrize("day", [16, 17, 18])
def test_seollal_2026(shop: ShopConfig, day: int) -> None:
    a = assess(shop, AVAILABLE, kst(2026, 2, day, 11, 0))
    assert a.kind == "holiday"
    assert a.reason == "설날 연휴"
    assert a.period == (date(2026, 2, 16), date(2026, 2, 18))
    assert a.reply_from == kst(2026, 2, 19, 9, 0)


def test_seollal_2026_from_the_weekend_before(shop: ShopConfig) -> None:
    a = assess(shop, AVAILABLE, kst(2026, 2, 14, 13, 30))  # Saturday after closing
    assert a.kind == "closed"
    assert a.reply_from == kst(2026, 2, 19, 9, 0)


def test_christmas_2026_single_day(shop: ShopConfig) -> None:
    a = assess(shop, AVAILABLE, kst(2026, 12, 25, 10, 0))  # Friday
    assert a.kind == "holiday"
    assert a.reason == "기독탄신일"
    assert a.period == (date(2026, 12, 25), date(2026, 12, 25))
    assert a.reply_from == kst(2026, 12, 26, 9, 0)


def test_substitute_holiday_is_named_naturally(shop: ShopConfig) -> None:
    assert closed_reason(shop, date(2026, 10, 5)) == (
        "개천절 대체공휴일",
        (date(2026, 10, 5), date(2026, 10, 5)),
    )


def test_holiday_and_its_substitute_in_a_row_are_one_run(shop: ShopConfig) -> None:
    # 삼일절 falls on Sunday 2026-03-01; Monday 03-02 is its substitute.
    assert closed_reason(shop, date(2026, 3, 2)) == (
        "삼일절 연휴",
        (date(2026, 3, 1), date(2026, 3, 2)),
    )


def test_new_year_reads_as_sinjeong(shop: ShopConfig) -> None:
    assert closed_reason(shop, date(2027, 1, 1)) == ("신정", (date(2027, 1, 1), date(2027, 1, 1)))


def test_an_ordinary_day_has_no_reason(shop: ShopConfig) -> None:
    assert closed_reason(shop, date(2026, 11, 23)) is None
    assert closed_reason(shop, date(2026, 11, 29)) is None  # Sunday: closed, but no reason


def test_configured_closure_overrides() -> None:
    shop = _shop(
        closures=[{"start": date(2026, 12, 28), "end": date(2026, 12, 31), "reason": "연말 휴무"}]
    )
    a = assess(shop, AVAILABLE, kst(2026, 12, 29, 10, 0))
    assert a.kind == "closure"
    assert a.reason == "연말 휴무"
    assert a.period == (date(2026, 12, 28), date(2026, 12, 31))
    # 1 January is 신정: the first answer comes on Saturday 2 January.
    assert a.reply_from == kst(2027, 1, 2, 9, 0)


def test_closure_wins_over_a_public_holiday() -> None:
    shop = _shop(
        closures=[{"start": date(2026, 12, 24), "end": date(2026, 12, 26), "reason": "가족 행사"}]
    )
    a = assess(shop, AVAILABLE, kst(2026, 12, 25, 10, 0))
    assert a.kind == "closure"
    assert a.reason == "가족 행사"
    assert a.period == (date(2026, 12, 24), date(2026, 12, 26))
    assert a.reply_from == kst(2026, 12, 28, 9, 0)


def test_shop_open_on_public_holidays() -> None:
    hours = dict(shop_table()["hours"], closed_on_public_holidays=False)
    shop = _shop(hours=hours)
    now = kst(2026, 12, 25, 10, 0)
    a = assess(shop, AVAILABLE, now)
    assert a.kind == "open"
    assert a.reply_from == now
    assert closed_reason(shop, date(2026, 12, 25)) is None


def test_is_open_at_edges(shop: ShopConfig) -> None:
    assert is_open_at(shop, kst(2026, 11, 23, 9, 0))
    assert is_open_at(shop, kst(2026, 11, 23, 17, 59))
    assert not is_open_at(shop, kst(2026, 11, 23, 18, 0))
    assert not is_open_at(shop, kst(2026, 11, 23, 8, 59))
    assert not is_open_at(shop, kst(2026, 11, 29, 10, 0))  # Sunday
    assert not is_open_at(shop, kst(2026, 12, 25, 10, 0))  # 기독탄신일
    # A UTC moment is read in the shop's time zone: 01:00 UTC is 10:00 KST.
    assert is_open_at(shop, datetime(2026, 11, 23, 1, 0, tzinfo=UTC))


def test_next_opening_is_the_moment_itself_when_open(shop: ShopConfig) -> None:
    now = kst(2026, 11, 23, 10, 17)
    assert next_opening(shop, now) == now
    assert next_opening(shop, now).tzinfo == UTC


def test_next_opening_crosses_a_long_closure() -> None:
    shop = _shop(closures=[{"start": date(2027, 1, 1), "end": date(2027, 2, 28), "reason": "휴가"}])
    # 2027-03-01 is 삼일절 (Monday); the shop reopens Tuesday 2 March.
    assert next_opening(shop, kst(2026, 12, 31, 18, 0)) == kst(2027, 3, 2, 9, 0)


def test_next_opening_gives_up_on_a_shop_that_never_opens() -> None:
    shop = make_settings().shops[0]
    shop = replace(shop, hours=(None,) * 7)
    with pytest.raises(ValueError, match="does not open"):
        next_opening(shop, kst(2026, 11, 23, 10, 0))


def test_naive_datetimes_are_refused(shop: ShopConfig) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        assess(shop, AVAILABLE, datetime(2026, 11, 23, 10, 0))


def test_upcoming_closures_within_two_weeks(shop: ShopConfig) -> None:
    assert upcoming_closures(shop, date(2026, 12, 20)) == [
        ("기독탄신일", (date(2026, 12, 25), date(2026, 12, 25))),
        ("신정", (date(2027, 1, 1), date(2027, 1, 1))),
    ]
    assert upcoming_closures(shop, date(2026, 11, 23)) == []


# --------------------------------------------------------------------------- overnight, 24 h

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hours(default: str, **days: str) -> ShopConfig:
    """A shop open `default` every day except `days`; closed on public holidays."""
    week = {day: days.get(day, default) for day in WEEK}
    return _shop(hours={**week, "closed_on_public_holidays": True})


# A bar-like repair shop: 22:00-02:00, closed Sundays. Monday 23 November 2026.
NIGHT = {"default": "22:00-02:00", "sun": "closed"}


@pytest.mark.parametrize(
    ("hours", "now", "kind", "reply_from"),
    [
        # in the evening part and in the small hours of the same opening
        (NIGHT, kst(2026, 11, 23, 23, 0), "open", kst(2026, 11, 23, 23, 0)),
        (NIGHT, kst(2026, 11, 24, 1, 59), "open", kst(2026, 11, 24, 1, 59)),
        # closed from 02:00 until the evening
        (NIGHT, kst(2026, 11, 24, 2, 0), "closed", kst(2026, 11, 24, 22, 0)),
        (NIGHT, kst(2026, 11, 24, 15, 0), "closed", kst(2026, 11, 24, 22, 0)),
        # Saturday's opening runs into Sunday although Sunday is a day off ...
        (NIGHT, kst(2026, 11, 29, 1, 0), "open", kst(2026, 11, 29, 1, 0)),
        # ... and after it the shop opens again on Monday evening
        (NIGHT, kst(2026, 11, 29, 3, 0), "closed", kst(2026, 11, 30, 22, 0)),
        # Thursday 24 December's opening runs into Christmas Day; Christmas itself opens not
        (NIGHT, kst(2026, 12, 25, 1, 0), "open", kst(2026, 12, 25, 1, 0)),
        (NIGHT, kst(2026, 12, 25, 3, 0), "holiday", kst(2026, 12, 26, 22, 0)),
        (NIGHT, kst(2026, 12, 25, 23, 0), "holiday", kst(2026, 12, 26, 22, 0)),
        # around the clock: always open, across midnight too
        ({"default": "00:00-24:00"}, kst(2026, 11, 23, 23, 59), "open", kst(2026, 11, 23, 23, 59)),
        ({"default": "00:00-24:00"}, kst(2026, 11, 24, 0, 0), "open", kst(2026, 11, 24, 0, 0)),
        # ... except on a holiday, reopening at its midnight
        ({"default": "00:00-24:00"}, kst(2026, 12, 25, 12, 0), "holiday", kst(2026, 12, 26, 0, 0)),
        # open until midnight: closed at 00:00, open again at 09:00
        ({"default": "09:00-24:00"}, kst(2026, 11, 23, 23, 59), "open", kst(2026, 11, 23, 23, 59)),
        ({"default": "09:00-24:00"}, kst(2026, 11, 24, 0, 0), "closed", kst(2026, 11, 24, 9, 0)),
    ],
)
def test_hours_past_midnight_and_around_the_clock(
    hours: dict[str, str], now: datetime, kind: str, reply_from: datetime
) -> None:
    shop = _hours(**hours)
    a = assess(shop, AVAILABLE, now)
    assert (a.kind, a.reply_from) == (kind, reply_from)
    assert is_open_at(shop, now) == (kind == "open")
    assert next_opening(shop, now) == reply_from


def test_a_night_shop_owner_off_answers_the_next_evening() -> None:
    shop = _hours(**NIGHT)
    a = assess(shop, OwnerState("off"), kst(2026, 11, 23, 23, 0))
    # not at 00:00 in tonight's own opening, but in tomorrow evening's
    assert (a.kind, a.reply_from) == ("owner_off", kst(2026, 11, 24, 22, 0))


def test_a_night_shop_owner_on_site_past_closing() -> None:
    shop = _hours(**NIGHT)
    busy = OwnerState("on_site", kst(2026, 11, 24, 3, 0))
    a = assess(shop, busy, kst(2026, 11, 23, 23, 0))
    assert (a.kind, a.reply_from) == ("owner_busy", kst(2026, 11, 24, 22, 0))


@pytest.mark.parametrize(
    ("hours", "now", "closes"),
    [
        (NIGHT, kst(2026, 11, 23, 23, 0), kst(2026, 11, 24, 2, 0)),
        ({"default": "09:00-18:00"}, kst(2026, 11, 23, 10, 0), kst(2026, 11, 23, 18, 0)),
        ({"default": "09:00-18:00"}, kst(2026, 11, 23, 19, 0), None),  # closed now
        # around the clock, back to back until the holiday closes it
        ({"default": "00:00-24:00"}, kst(2026, 12, 22, 10, 0), kst(2026, 12, 25, 0, 0)),
        # around the clock with nothing in the week ahead: no closing time to tell
        ({"default": "00:00-24:00"}, kst(2026, 11, 23, 10, 0), None),
    ],
)
def test_open_until(hours: dict[str, str], now: datetime, closes: datetime | None) -> None:
    assert open_until(_hours(**hours), now) == closes


@pytest.mark.parametrize(
    ("hours", "now", "told"),
    [
        (NIGHT, kst(2026, 11, 23, 23, 0), "지금은 영업 중이에요(내일 02:00까지)."),
        (NIGHT, kst(2026, 11, 24, 1, 0), "지금은 영업 중이에요(오늘 02:00까지)."),
        (NIGHT, kst(2026, 11, 24, 3, 0), "지금은 영업시간이 아니에요. 22:00부터 다시 문을 열어요."),
        ({"default": "00:00-24:00"}, kst(2026, 11, 23, 10, 0), "지금은 영업 중이에요(24시간)."),
    ],
)
def test_what_a_customer_asking_for_the_hours_is_told(
    hours: dict[str, str], now: datetime, told: str
) -> None:
    shop = _hours(**hours)
    text = Texts().render("hours", shop=shop, local_now=now.astimezone(shop.timezone))
    assert told in text


def test_hours_summary_reads_night_and_all_day_hours() -> None:
    assert hours_summary(_hours(**NIGHT)).startswith("월~토요일 22:00~02:00")
    assert hours_summary(_hours("00:00-24:00")).startswith("매일 24시간")
    assert hours_summary(_hours("09:00-24:00")).startswith("매일 09:00~24:00")


# --------------------------------------------------------------------------- owner status


@pytest.mark.parametrize(
    ("now", "typed", "until"),
    [
        (kst(2026, 11, 23, 10, 0), "15:30", kst(2026, 11, 23, 15, 30)),
        # 15:30 has passed at 19:15: it is tomorrow's 15:30, never a time in the past
        (kst(2026, 11, 23, 19, 15), "15:30", kst(2026, 11, 24, 15, 30)),
        (kst(2026, 11, 23, 23, 0), "1:00", kst(2026, 11, 24, 1, 0)),
        (kst(2026, 11, 23, 15, 30), "15:30", kst(2026, 11, 24, 15, 30)),
    ],
)
def test_busy_until_is_the_next_time_the_clock_shows_it(
    now: datetime, typed: str, until: datetime
) -> None:
    got = busy_until(typed, now, KST)
    assert got == until
    assert got > now


@pytest.mark.parametrize("typed", ["", "15", "24:00", "15:60", "3 pm", "15:30:00"])
def test_busy_until_refuses_what_is_not_a_time(typed: str) -> None:
    with pytest.raises(ValueError, match=r"expected a time HH:MM \(00:00-23:59\), got"):
        busy_until(typed, kst(2026, 11, 23, 10, 0), KST)
