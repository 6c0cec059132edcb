"""Customer-facing texts: exact wording, Korean dates and particles, sizes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from conftest import KST, kst, make_settings, shop_table
from jinja2 import UndefinedError

from core.availability import OwnerState, assess
from core.config import OpeningHours, ShopConfig
from core.texts import (
    Texts,
    hours_summary,
    josa,
    korean_day,
    korean_duration,
    korean_list,
    korean_moment,
    wait_values,
)

AVAILABLE = OwnerState("available")
WAIT_TEMPLATES = ("ack", "followup", "handoff", "complaint", "hours")


@pytest.fixture(scope="module")
def texts() -> Texts:
    return Texts()


@pytest.fixture
def shop() -> ShopConfig:
    return make_settings().shops[0]


def _render(
    texts: Texts,
    shop: ShopConfig,
    name: str,
    now: datetime,
    owner: OwnerState = AVAILABLE,
    median: timedelta | None = None,
) -> str:
    return texts.render(name, **wait_values(shop, assess(shop, owner, now, median), now))


# --------------------------------------------------------------------------- ack


def test_ack_open(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 11, 23, 10, 0)) == (
        "문의 감사합니다. 한빛설비입니다. 사장님이 확인하고 바로 답변드릴게요.\n"
        "급하시면 02-1234-5678로 전화 주세요."
    )


def test_ack_open_with_median(texts: Texts, shop: ShopConfig) -> None:
    text = _render(
        texts, shop, "ack", kst(2026, 11, 23, 10, 0), median=timedelta(minutes=6, seconds=1)
    )
    assert text == (
        "문의 감사합니다. 한빛설비입니다. 사장님이 확인하고 바로 답변드릴게요. "
        "요즘은 보통 7분 안에 답변드리고 있어요.\n"
        "급하시면 02-1234-5678로 전화 주세요."
    )


def test_ack_open_with_a_slow_median(texts: Texts, shop: ShopConfig) -> None:
    text = _render(texts, shop, "ack", kst(2026, 11, 23, 10, 0), median=timedelta(minutes=84))
    assert "요즘은 답변까지 약 1시간 30분 걸리고 있어요." in text


def test_ack_open_without_phone(texts: Texts) -> None:
    shop = make_settings(shops=[shop_table(phone="")]).shops[0]
    assert _render(texts, shop, "ack", kst(2026, 11, 23, 10, 0)) == (
        "문의 감사합니다. 한빛설비입니다. 사장님이 확인하고 바로 답변드릴게요."
    )


def test_ack_owner_on_site(texts: Texts, shop: ShopConfig) -> None:
    owner = OwnerState("on_site", kst(2026, 11, 23, 15, 30))
    assert _render(texts, shop, "ack", kst(2026, 11, 23, 10, 0), owner) == (
        "문의 감사합니다. 사장님이 현장 작업 중이라 15:30 이후 답변드릴게요.\n"
        "급하시면 02-1234-5678로 전화 주세요."
    )


def test_ack_owner_on_site_past_closing(texts: Texts, shop: ShopConfig) -> None:
    owner = OwnerState("on_site", kst(2026, 11, 23, 19, 0))
    text = _render(texts, shop, "ack", kst(2026, 11, 23, 10, 0), owner)
    assert text.startswith(
        "문의 감사합니다. 사장님이 현장 작업 중이라 내일 09:00 이후 답변드릴게요.\n"
    )


def test_ack_owner_off_on_friday(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 11, 27, 10, 0), OwnerState("off")) == (
        "문의 감사합니다. 오늘은 사장님이 쉬는 날이라 내일 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_friday_evening(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 11, 27, 19, 0)) == (
        "지금은 영업시간이 아니에요. 내일 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_saturday_afternoon(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 11, 28, 14, 0)) == (
        "지금은 영업시간이 아니에요. 11월 30일(월) 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_sunday_night_before_a_tuesday(texts: Texts, shop: ShopConfig) -> None:
    # The example: Sunday night, the shop reopens Monday 24 November... which is a
    # Tuesday in 2026. Take the weekend before a closed Monday to land on Tuesday.
    shop = replace(shop, hours=(None, *shop.hours[1:]))
    assert _render(texts, shop, "ack", kst(2026, 11, 22, 21, 0)) == (
        "지금은 영업시간이 아니에요. 11월 24일(화) 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_chuseok(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 9, 24, 10, 0)) == (
        "추석 연휴(9/24~9/26)로 쉬고 있어요. 9월 28일(월) 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_seollal(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 2, 17, 15, 0)) == (
        "설날 연휴(2/16~2/18)로 쉬고 있어요. 2월 19일(목) 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_christmas(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 12, 25, 10, 0)) == (
        "기독탄신일(12/25)로 쉬고 있어요. 내일 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_substitute_holiday(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "ack", kst(2026, 10, 5, 10, 0)).startswith(
        "개천절 대체공휴일(10/5)로 쉬고 있어요. 내일 09:00부터 순서대로 답변드려요."
    )


def test_ack_closure(texts: Texts) -> None:
    shop = make_settings(
        shops=[
            shop_table(
                closures=[
                    {"start": date(2026, 12, 28), "end": date(2026, 12, 31), "reason": "연말 휴무"}
                ]
            )
        ]
    ).shops[0]
    assert _render(texts, shop, "ack", kst(2026, 12, 29, 10, 0)) == (
        "연말 휴무(12/28~12/31)로 쉬고 있어요. 1월 2일(토) 09:00부터 순서대로 답변드려요.\n"
        "남겨주신 내용은 사장님께 전달했어요."
    )


def test_ack_closure_reason_takes_the_right_particle(texts: Texts) -> None:
    closure = {"start": date(2026, 11, 23), "end": date(2026, 11, 23), "reason": "개인 사정"}
    shop = make_settings(shops=[shop_table(closures=[closure])]).shops[0]
    assert _render(texts, shop, "ack", kst(2026, 11, 23, 10, 0)).startswith(
        "개인 사정(11/23)으로 쉬고 있어요. 내일 09:00부터"
    )


# --------------------------------------------------------------------------- the other wait texts


def test_followup(texts: Texts, shop: ShopConfig) -> None:
    open_now = _render(texts, shop, "followup", kst(2026, 11, 23, 10, 0))
    assert open_now == "메시지 잘 받았어요. 사장님께 함께 전달할게요."
    busy = _render(
        texts,
        shop,
        "followup",
        kst(2026, 11, 23, 10, 0),
        OwnerState("on_site", kst(2026, 11, 23, 15, 30)),
    )
    assert busy == "메시지 잘 받았어요. 사장님께 함께 전달할게요. 15:30 이후 답변드려요."
    closed = _render(texts, shop, "followup", kst(2026, 11, 27, 19, 0))
    assert closed == "메시지 잘 받았어요. 사장님께 함께 전달할게요. 내일 09:00부터 답변드려요."


def test_handoff(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "handoff", kst(2026, 11, 28, 14, 0)) == (
        "사장님께 바로 연결해 드릴게요. 지금은 영업시간이 아니에요. "
        "11월 30일(월) 09:00부터 순서대로 답변드려요."
    )
    owner = OwnerState("on_site", kst(2026, 11, 23, 15, 30))
    assert _render(texts, shop, "handoff", kst(2026, 11, 23, 10, 0), owner) == (
        "사장님께 바로 연결해 드릴게요. 사장님이 현장 작업 중이라 15:30 이후 답변드릴게요.\n"
        "급하시면 02-1234-5678로 전화 주세요."
    )


def test_complaint(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "complaint", kst(2026, 11, 27, 19, 0)) == (
        "불편을 드려 정말 죄송합니다. "
        "사장님께 바로 전달했고, 24시간 안에 연락드려 해결해 드릴게요.\n"
        "지금은 영업시간이 아니에요. 내일 09:00부터 순서대로 답변드려요."
    )


def test_complaint_uses_the_shops_fix_hours(texts: Texts) -> None:
    shop = make_settings(shops=[shop_table(complaint_fix_hours=48)]).shops[0]
    assert "48시간 안에 연락드려" in _render(texts, shop, "complaint", kst(2026, 11, 23, 10, 0))


# --------------------------------------------------------------------------- FAQ answers


def test_hours_while_open(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "hours", kst(2026, 11, 23, 10, 0)) == (
        "영업시간은 평일 09:00~18:00, 토요일 09:00~13:00이에요. 일요일과 공휴일은 쉬어요.\n"
        "지금은 영업 중이에요(오늘 18:00까지)."
    )


def test_hours_mentions_holidays_in_the_next_two_weeks(texts: Texts, shop: ShopConfig) -> None:
    assert _render(texts, shop, "hours", kst(2026, 12, 17, 19, 0)) == (
        "영업시간은 평일 09:00~18:00, 토요일 09:00~13:00이에요. 일요일과 공휴일은 쉬어요.\n"
        "지금은 영업시간이 아니에요. 내일 09:00부터 다시 문을 열어요.\n"
        "12월 25일(금) 기독탄신일은 쉬어요."
    )


def test_hours_mentions_a_multi_day_closure(texts: Texts) -> None:
    closure = {"start": date(2026, 12, 28), "end": date(2026, 12, 31), "reason": "연말 휴무"}
    shop = make_settings(shops=[shop_table(closures=[closure])]).shops[0]
    text = _render(texts, shop, "hours", kst(2026, 12, 21, 10, 0))
    assert text.endswith(
        "12월 25일(금) 기독탄신일은 쉬어요.\n"
        "12월 28일(월)~12월 31일(목) 연말 휴무는 쉬어요.\n"
        "1월 1일(금) 신정은 쉬어요."
    )


def test_location(texts: Texts, shop: ShopConfig) -> None:
    # The address URL-encoded into a search on each map (PROTOCOLS-free: their public URLs).
    address = "%EC%84%9C%EC%9A%B8%EC%8B%9C%20%EB%A7%88%ED%8F%AC%EA%B5%AC%20%EC%9B%94%EB%93%9C%EC%BB%B5%EB%A1%9C%201"
    assert texts.render("location", shop=shop) == (
        "한빛설비 주소: 서울시 마포구 월드컵로 1\n"
        f"네이버 지도: https://map.naver.com/p/search/{address}\n"
        f"카카오맵: https://map.kakao.com/link/search/{address}\n"
        "전화: 02-1234-5678"
    )


def test_location_map_links_encode_the_whole_address(texts: Texts, shop: ShopConfig) -> None:
    odd = replace(shop, address="서울 중구 세종대로 110 B1/2층 #3 & 옆 ?")
    text = texts.render("location", shop=odd)
    naver = next(line for line in text.splitlines() if line.startswith("네이버 지도: "))
    url = naver.removeprefix("네이버 지도: ")
    assert " " not in url
    assert all(c not in url.removeprefix("https://map.naver.com/p/search/") for c in "/#&?")


def test_owner_notification(texts: Texts, shop: ShopConfig) -> None:
    def note(body: str, **flags: bool) -> str:
        values: dict[str, Any] = {"complaint": False, "handoff": False, **flags}
        return texts.render(
            "owner_notification", shop=shop, customer_label="고객 #12", body=body, **values
        )

    assert note("에어컨에서\n물이 새요") == '[단골] 새 문의 · 고객 #12: "에어컨에서 물이 새요"'
    assert note("사람이랑 얘기할래요", handoff=True) == (
        '[단골] 상담 연결 요청 · 고객 #12: "사람이랑 얘기할래요"'
    )
    assert note("너무 실망했어요", complaint=True, handoff=True) == (
        '[단골] 불만 접수(24시간 내 해결) · 고객 #12: "너무 실망했어요"'
    )
    long = note("가" * 200)
    assert long == f'[단골] 새 문의 · 고객 #12: "{"가" * 59}…"'


def test_fixed_texts(texts: Texts) -> None:
    assert texts.render("optout") == (
        "광고성 메시지 수신을 거부하셨어요. 예약·작업 안내 같은 꼭 필요한 연락만 드릴게요. "
        "다시 받으시려면 '수신동의'라고 보내 주세요."
    )
    assert texts.render("optin") == (
        "광고성 메시지 수신에 동의하셨어요. 언제든 '수신거부'라고 보내시면 멈출게요."
    )
    assert texts.render("duplicate_graceful") == (
        "메시지를 받았어요. 잠시 후 사장님이 확인하고 답변드릴게요."
    )


def test_missing_values_fail_loudly(texts: Texts) -> None:
    with pytest.raises(UndefinedError):
        texts.render("ack")


def test_customer_text_is_not_html_escaped(texts: Texts, shop: ShopConfig) -> None:
    text = texts.render(
        "owner_notification",
        shop=shop,
        customer_label="<b>김</b>",
        body="A & B",
        complaint=False,
        handoff=False,
    )
    assert text == '[단골] 새 문의 · <b>김</b>: "A & B"'


# --------------------------------------------------------------------------- sizes


NOWS = [
    kst(2026, 11, 23, 10, 0),
    kst(2026, 11, 27, 19, 0),
    kst(2026, 11, 28, 14, 0),
    kst(2026, 9, 24, 10, 0),
    kst(2026, 2, 16, 10, 0),
    kst(2026, 12, 25, 10, 0),
    kst(2026, 10, 5, 10, 0),
]
OWNERS = [
    AVAILABLE,
    OwnerState("off"),
    OwnerState("on_site", kst(2026, 11, 23, 15, 30)),
]


@pytest.mark.parametrize("now", NOWS)
@pytest.mark.parametrize("owner", OWNERS)
def test_every_wait_text_fits(
    texts: Texts, shop: ShopConfig, now: datetime, owner: OwnerState
) -> None:
    for name in WAIT_TEMPLATES:
        text = _render(texts, shop, name, now, owner, timedelta(minutes=95))
        assert text
        assert len(text) <= 1000
        if name == "ack":
            assert len(text) <= 300


def test_other_texts_fit(texts: Texts, shop: ShopConfig) -> None:
    rendered = [
        texts.render("location", shop=shop),
        texts.render(
            "owner_notification",
            shop=shop,
            customer_label="고객 #1",
            body="x" * 5000,
            complaint=True,
            handoff=False,
        ),
        texts.render("optout"),
        texts.render("optin"),
        texts.render("duplicate_graceful"),
    ]
    assert all(0 < len(t) <= 1000 for t in rendered)


# --------------------------------------------------------------------------- helpers


def test_korean_day() -> None:
    assert korean_day(date(2026, 11, 23)) == "11월 23일(월)"
    assert korean_day(date(2026, 11, 24)) == "11월 24일(화)"
    assert korean_day(date(2026, 9, 28)) == "9월 28일(월)"


def test_korean_moment() -> None:
    today = date(2026, 11, 23)
    assert korean_moment(datetime(2026, 11, 23, 15, 30, tzinfo=KST), today) == "15:30"
    assert korean_moment(datetime(2026, 11, 24, 9, 0, tzinfo=KST), today) == "내일 09:00"
    assert korean_moment(datetime(2026, 11, 30, 9, 0, tzinfo=KST), today) == "11월 30일(월) 09:00"


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(seconds=5), "1분"),
        (timedelta(minutes=7), "7분"),
        (timedelta(minutes=7, seconds=1), "8분"),
        (timedelta(minutes=59, seconds=30), "약 1시간"),
        (timedelta(minutes=84), "약 1시간 30분"),
        (timedelta(hours=2), "약 2시간"),
    ],
)
def test_korean_duration(span: timedelta, expected: str) -> None:
    assert korean_duration(span) == expected


def test_hours_summary(shop: ShopConfig) -> None:
    assert hours_summary(shop) == "평일 09:00~18:00, 토요일 09:00~13:00, 일요일·공휴일 휴무"


def test_hours_summary_groups_other_weeks(shop: ShopConfig) -> None:
    nine_to_six = OpeningHours(time(9), time(18))
    ten_to_eight = OpeningHours(time(10), time(20))
    week = (None, nine_to_six, nine_to_six, nine_to_six, ten_to_eight, None, None)
    odd = replace(shop, hours=week, closed_on_public_holidays=False)
    assert hours_summary(odd) == ("화~목요일 09:00~18:00, 금요일 10:00~20:00, 월요일·주말 휴무")
    every_day = replace(shop, hours=(nine_to_six,) * 7)
    assert hours_summary(every_day) == "매일 09:00~18:00, 공휴일 휴무"


@pytest.mark.parametrize(
    ("word", "pair", "expected"),
    [
        ("추석 연휴", "으로/로", "로"),
        ("기독탄신일", "으로/로", "로"),  # ㄹ takes 로
        ("개인 사정", "으로/로", "으로"),
        ("02-1234-5678", "으로/로", "로"),  # 팔
        ("010-1234-5670", "으로/로", "으로"),  # 공
        ("공휴일", "은/는", "은"),
        ("연말 휴무", "은/는", "는"),
        ("일요일", "과/와", "과"),
        ("Summer", "으로/로", "(으)로"),
        ("Summer", "은/는", "은(는)"),
    ],
)
def test_josa(word: str, pair: str, expected: str) -> None:
    assert josa(word, pair) == expected


def test_korean_list() -> None:
    assert korean_list(["공휴일"]) == "공휴일"
    assert korean_list(["일요일", "공휴일"]) == "일요일과 공휴일"
    assert korean_list(["월요일", "주말", "공휴일"]) == "월요일, 주말과 공휴일"
