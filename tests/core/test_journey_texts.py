"""Every customer-facing template rendered with realistic long values fits every channel —
Kakao ≤ 1000 characters; SMS ≤ 90 bytes in CP949, else LMS ≤ 2000 bytes with a subject
≤ 40 bytes; no character CP949 cannot carry — and a shop's own wording shadows ours
(`[server] templates_dir`) without leaving the sandbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import kst, make_settings, settings_dict, shop_table
from jinja2 import UndefinedError
from jinja2.exceptions import SecurityError

from core.availability import OwnerState, assess
from core.config import ConfigErrors, ShopConfig, parse
from core.texts import Texts, wait_values
from providers.sms_text import (
    LMS_MAX_BYTES,
    SMS_MAX_BYTES,
    SUBJECT_MAX_BYTES,
    cp949_len,
    size_mms_text,
    size_text,
)
from scheduler.planners.journey_reads import Due, JobPhoto
from scheduler.planners.journey_texts import step_values

KAKAO_MAX_CHARS = 1000
NOW = kst(2026, 12, 4, 10)
LONG_NAME = "남궁 알렉산드라 크리스티나"
LONG_SHOP = "한빛냉난방설비 마포본점"
LONG_ADDRESS = (
    "서울특별시 마포구 월드컵북로 396 누리꿈스퀘어 비즈니스타워 15층 1503호 "
    "(상암동, 정문 경비실 옆 화물 엘리베이터 이용)"
)
LONG_SERVICE = "에어컨 청소·수리 (벽걸이·스탠드·시스템)"
TIPS = (
    "처음 가동하실 때 30분 정도 냄새나 물샘이 없는지 꼭 확인해 주세요.",
    "실외기 주변 1미터 안에는 물건을 두지 마시고 통풍이 잘되게 해 주세요.",
    "리모컨의 자동 건조 기능을 켜 두시면 곰팡이와 냄새를 줄일 수 있어요.",
)
REVIEW_LINKS = {
    "네이버 플레이스": "https://m.place.naver.com/place/1234567890/review/visitor?entry=pll",
    "카카오맵": "https://place.map.kakao.com/1234567890#comment",
    "구글 지도": "https://www.google.com/maps/place/?q=place_id:ChIJN1t_tDeuEmsRUsoyG83frY4",
}
SURVEY_LINK = "https://dangol.hanbit-seolbi.co.kr/s/" + "A" * 24
JOURNEY_STEPS = (
    "confirmation",
    "reminder",
    "on_my_way",
    "photo",
    "completion",
    "aftercare",
    "survey",
    "survey_reminder",
    "review",
    "gold_thanks",
)


def long_shop() -> ShopConfig:
    table = shop_table(
        name=LONG_SHOP,
        address=LONG_ADDRESS,
        phone="031-1234-5678",
        services=[
            {
                "key": "aircon",
                "name": LONG_SERVICE,
                "duration_minutes": 150,
                "prepare": "실외기 주변을 비워 주시고, 주차 가능 여부와 공동현관 비밀번호를 "
                "미리 알려 주세요. 반려동물은 작업 중 다른 방에 있게 해 주세요.",
                "warranty": "무상 A/S 6개월 (같은 증상 재발 시 출장비 없이 다시 봐 드려요)",
                "aftercare": [{"after_days": 0, "text": t} for t in TIPS]
                + [{"after_days": 14, "text": "필터는 2주마다 물로 씻어 그늘에 말려 주세요."}],
            }
        ],
        journey={"review_links": REVIEW_LINKS},
    )
    return make_settings(shops=[table]).shops[0]


SHOP = long_shop()


def due(step: str, *, revision: int = 1, tier: str | None = "gold", **payload: Any) -> Due:
    return Due(
        id=1,
        shop_id=1,
        job_id=123456,
        customer_id=7,
        step=step,
        key=step,
        kind="info",
        due_at=NOW,
        payload=payload,
        created_at=NOW,
        job_status="done",
        service="aircon",
        service_name=LONG_SERVICE,
        address=LONG_ADDRESS,
        starts_at=kst(2026, 12, 5, 13, 30),
        ends_at=kst(2026, 12, 5, 17, 30),
        revision=revision,
        conversation_id=1,
        done_at=kst(2026, 11, 27, 16),
        customer_name=LONG_NAME,
        customer_tier=tier,
    )


PHOTOS = [
    JobPhoto(1, 123456, "a" * 28 + ".jpg", 2048, 1536, "image/jpeg", "after"),
    JobPhoto(2, 123456, "b" * 28 + ".jpg", 2048, 1536, "image/jpeg", "before"),
]
PAYLOADS: dict[str, dict[str, Any]] = {
    "on_my_way": {"eta": kst(2026, 12, 5, 13, 50).isoformat()},
    "photo": {
        "photo_id": 1,
        "phase": "during",
        "caption": "배관 연결부에서 물이 새고 있었어요. " * 5,
    },
    "completion": {"tips": list(TIPS)},
    "aftercare": {"tip": "필터는 2주마다 물로 씻어 그늘에 말려 주세요. " * 3, "after_days": 14},
}


def journey_cases() -> list[tuple[str, bool, int]]:
    return [
        (step, digits, revision)
        for step in JOURNEY_STEPS
        for digits in (True, False)
        for revision in (1, 2)
    ]


def render_step(texts: Texts, step: str, digits: bool, revision: int = 1) -> tuple[str, str | None]:
    photos = PHOTOS if step in ("photo", "completion") else []
    values = step_values(
        due(step, revision=revision, **PAYLOADS.get(step, {})),
        SHOP,
        photos,
        link=SURVEY_LINK if step.startswith("survey") else "",
        digits=digits,
        now=NOW,
    )
    return texts.render_with_subject(f"journey/{step}", **values)


def check_channels(text: str, subject: str | None = None, *, photo: bool = False) -> None:
    """Fits Kakao (≤ 1000 characters) and SMS: CP949 only, SMS or LMS within its bytes."""
    assert text, "empty"
    assert len(text) <= KAKAO_MAX_CHARS, len(text)
    text.encode("cp949")  # no character a handset cannot show, not even one we would swap
    sized = (size_mms_text if photo else size_text)(text, subject)
    assert sized.text == text
    assert cp949_len(text) <= LMS_MAX_BYTES
    if sized.kind == "SMS":
        assert cp949_len(text) <= SMS_MAX_BYTES
    if subject is not None:
        subject.encode("cp949")
        assert cp949_len(subject) <= SUBJECT_MAX_BYTES, subject
    if sized.subject is not None:
        assert cp949_len(sized.subject) <= SUBJECT_MAX_BYTES


def check_tidy(text: str) -> None:
    """No leftovers of the template: doubled spaces, blank lines, dangling values."""
    assert "  " not in text, text
    assert "\n\n" not in text, text
    assert "None" not in text
    assert "{" not in text
    for line in text.splitlines():
        assert line == line.strip(), line


@pytest.fixture(scope="module")
def texts() -> Texts:
    return Texts()


@pytest.mark.parametrize(("step", "digits", "revision"), journey_cases())
def test_every_journey_message_fits_every_channel_with_long_values(
    texts: Texts, step: str, digits: bool, revision: int
) -> None:
    text, subject = render_step(texts, step, digits, revision)
    check_channels(text, subject, photo=step in ("photo", "completion"))
    check_tidy(text)
    assert subject is not None
    assert text.startswith(f"[{LONG_SHOP}]")


def test_the_journeys_own_words(texts: Texts) -> None:
    confirmation, _ = render_step(texts, "confirmation", digits=True)
    assert confirmation.startswith(
        f"[{LONG_SHOP}] {LONG_NAME} 고객님, 12월 5일(토) 13:30~17:30 {LONG_SERVICE} 예약이 확정됐어요."
    )
    assert "작업은 약 2시간 30분 걸려요." in confirmation
    moved, subject = render_step(texts, "confirmation", digits=True, revision=2)
    assert "예약이 변경됐어요." in moved
    assert subject == f"[{LONG_SHOP}] 예약 변경 안내"
    reminder, _ = render_step(texts, "reminder", digits=False)
    assert "내일 12월 5일(토) 13:30~17:30" in reminder
    assert "'확인' 또는 '일정 변경'을 눌러 알려주세요." in reminder
    survey, _ = render_step(texts, "survey", digits=True)
    assert "지난주에 받으신" in survey
    assert "1~5 숫자로 답해 주세요." in survey
    assert SURVEY_LINK in survey
    completion, _ = render_step(texts, "completion", digits=True)
    assert "작업 전후 사진을 함께 보내드려요." in completion
    for tip in TIPS:
        assert f"- {tip}" in completion
    review, _ = render_step(texts, "review", digits=True)
    for label, url in REVIEW_LINKS.items():
        assert f"{label}: {url}" in review


def test_the_gold_thanks_names_the_tier_and_its_benefit(texts: Texts) -> None:
    thanks, subject = render_step(texts, "gold_thanks", digits=True)
    assert thanks.startswith(f"[{LONG_SHOP}] {LONG_NAME} 고객님, 늘 저희를 찾아 주셔서")
    assert "이제 골드 고객님이세요." in thanks
    assert "앞으로 우선 예약 + 특별 할인 혜택을 드릴게요." in thanks
    assert subject == f"[{LONG_SHOP}] 골드 감사"
    assert "쿠폰" not in thanks
    assert "할인 코드" not in thanks


@pytest.mark.parametrize(
    ("tier", "name", "benefit"),
    [
        ("gold", "골드", "우선 예약 + 특별 할인"),
        ("silver", "실버", "정기 점검"),
        ("bronze", "브론즈", "추가 서비스 10% 할인"),
        (None, "", ""),
    ],
)
def test_every_journey_template_gets_the_customers_tier(
    tier: str | None, name: str, benefit: str
) -> None:
    values = step_values(due("review", tier=tier), SHOP, [], link="", digits=True, now=NOW)
    assert (values["tier"], values["tier_benefit"]) == (name, benefit)


def test_a_customer_whose_name_we_do_not_know_is_고객님(texts: Texts) -> None:
    values = step_values(
        replace(due("confirmation"), customer_name=None),
        SHOP,
        [],
        link="",
        digits=True,
        now=NOW,
    )
    text = texts.render("journey/confirmation", **values)
    assert text.startswith(f"[{LONG_SHOP}] 고객님, ")


# --------------------------------------------------------------------------- the others


def other_renders(shop: ShopConfig) -> dict[str, list[str]]:
    """The rest of dangol's templates (replies, acknowledgements, notices to the owner)
    in every state they have, with the long shop."""
    texts = Texts()
    rendered: dict[str, list[str]] = {}
    moments = (kst(2026, 11, 23, 10), kst(2026, 11, 23, 22), kst(2026, 11, 29, 10))
    owners = (OwnerState("available"), OwnerState("on_site", NOW + timedelta(hours=2)))
    for name in ("ack", "followup", "handoff", "complaint"):
        for at in moments:
            for owner in owners:
                values = wait_values(shop, assess(shop, owner, at, timedelta(minutes=47)), at)
                rendered.setdefault(name, []).append(texts.render(name, **values))
    for at in moments:
        local: datetime = at.astimezone(shop.timezone)
        rendered.setdefault("hours", []).append(texts.render("hours", shop=shop, local_now=local))
    body = "에어컨에서 물이 뚝뚝 떨어지고 이상한 소리가 나요. 내일 오전에 와 주실 수 있나요? " * 4
    for flags in ((False, False), (True, False), (False, True)):
        rendered.setdefault("owner_notification", []).append(
            texts.render(
                "owner_notification",
                shop=shop,
                customer_label=f"{LONG_NAME} (010-1234-5678)",
                body=body,
                complaint=flags[0],
                handoff=flags[1],
            )
        )
    for missed in (False, True):
        rendered.setdefault("owner_reply_target", []).append(
            texts.render(
                "owner_reply_target",
                shop=shop,
                customer_label=LONG_NAME,
                waited_minutes=28,
                missed=missed,
            )
        )
    rendered["mailbox"] = [
        texts.render("mailbox", shop=shop, body=body, sender=sender) for sender in ("owner", "bot")
    ]
    # A satisfaction score and a reminder's answer (core/jobs/survey.py, bot/inbound/awaited.py).
    start = kst(2026, 11, 24, 14)
    label = f"{LONG_NAME} (010-1234-5678)"
    rendered["survey_low_score"] = [texts.render("survey_low_score", shop=shop)]
    rendered["survey_received"] = [texts.render("survey_received", shop=shop, score=5)]
    rendered["reminder_answer"] = [
        texts.render(
            "reminder_answer",
            shop=shop,
            answer=answer,
            service=LONG_SERVICE,
            starts_local=start,
            ends_local=start + timedelta(hours=2),
        )
        for answer in ("confirmed", "change_requested")
    ]
    rendered["owner_low_score"] = [
        texts.render(
            "owner_low_score",
            shop=shop,
            customer_label=label,
            score=2,
            service=LONG_SERVICE,
            comment=comment,
        )
        for comment in ("", body)
    ]
    rendered["owner_change_request"] = [
        texts.render(
            "owner_change_request",
            shop=shop,
            customer_label=label,
            service=LONG_SERVICE,
            starts_local=start,
        )
    ]
    rendered["owner_complaint_due"] = [
        texts.render(
            "owner_complaint_due",
            shop=shop,
            customer_label=label,
            left=timedelta(hours=3),
            due_local=start,
            missed=missed,
        )
        for missed in (False, True)
    ]
    rendered["setup_problem"] = [
        texts.render("setup_problem", problem=p) for p in ("unknown_shop", "secret", "bot")
    ]
    for name in ("location", "not_stored"):
        rendered[name] = [texts.render(name, shop=shop)]
    for name in (
        "callback_wait",
        "duplicate_graceful",
        "not_understood",
        "optin",
        "optout",
        "received_later",
        "too_long",
    ):
        rendered[name] = [texts.render(name)]
    return rendered


def test_every_other_message_fits_every_channel_with_a_long_shop() -> None:
    for name, variants in other_renders(SHOP).items():
        for text in variants:
            try:
                check_channels(text)
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}\n{text}") from None


def test_every_template_is_rendered_by_these_tests(texts: Texts) -> None:
    """A new template must join the checks above."""
    found = {
        name.removesuffix(".j2")
        for name in texts._env.list_templates(extensions=["j2"])
        if not name.rsplit("/", 1)[-1].startswith("_")
    }
    covered = {f"journey/{step}" for step in JOURNEY_STEPS} | set(other_renders(SHOP))
    assert found == covered


# --------------------------------------------------------------------------- a shop's wording


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, "utf-8")
    return path


def test_a_shops_template_shadows_ours_by_path_and_may_include_ours(tmp_path: Path) -> None:
    write(
        tmp_path,
        "journey/confirmation.j2",
        '{% set subject = "[" ~ shop.name ~ "] 예약 완료" %}'
        "{{ customer_name }}님, {{ date }} {{ window }} 예약 완료! - {{ shop.name }}\n"
        '{% include "dangol/journey/confirmation.j2" %}',
    )
    write(tmp_path, "optout.j2", "수신거부 처리됐어요.")
    values = step_values(due("confirmation"), SHOP, [], link="", digits=True, now=NOW)
    text, subject = Texts(tmp_path).render_with_subject("journey/confirmation", **values)
    assert text.startswith(f"{LONG_NAME}님, 12월 5일(토) 13:30~17:30 예약 완료! - {LONG_SHOP}\n")
    assert text.endswith(Texts().render("journey/confirmation", **values))  # ours, included
    assert subject == f"[{LONG_SHOP}] 예약 완료"
    assert Texts(tmp_path).render("optout") == "수신거부 처리됐어요."
    assert Texts(tmp_path).render("optin") == Texts().render("optin")  # not overridden


def test_a_shops_template_stays_in_the_sandbox_and_strict(tmp_path: Path) -> None:
    write(tmp_path, "optin.j2", "{{ shop.__class__.__init__.__globals__ }}")
    write(tmp_path, "optout.j2", "{{ no_such_value }}")
    with pytest.raises(SecurityError):
        Texts(tmp_path).render("optin", shop=SHOP)
    with pytest.raises(UndefinedError):
        Texts(tmp_path).render("optout")


def test_the_setting_is_relative_to_the_config_file_and_checked_when_loaded(
    tmp_path: Path,
) -> None:
    write(tmp_path / "texts", "journey/survey.j2", "{{ shop.name }} 만족도 조사")

    def settings(folder: str) -> Any:
        data = settings_dict()
        data["server"] = {**data["server"], "templates_dir": folder}
        return parse(data, str(tmp_path / "config.toml"), tmp_path)

    assert settings("texts").server.templates_dir == str((tmp_path / "texts").resolve())
    assert settings(str(tmp_path / "texts")).server.templates_dir == str(
        (tmp_path / "texts").resolve()
    )

    def refused(folder: str) -> str:
        with pytest.raises(ConfigErrors) as info:
            settings(folder)
        return str(info.value)

    assert "server.templates_dir: no such directory" in refused("missing")
    write(tmp_path / "typo", "journey/confirmaton.j2", "예약 확정")
    assert "journey/confirmaton.j2 is not one of dangol's message templates" in refused("typo")
    write(tmp_path / "broken", "ack.j2", "{% if shop %}열려 있어요")
    assert "ack.j2, line 1:" in refused("broken")


async def test_the_app_speaks_with_the_shops_words(make_client: Any, tmp_path: Path) -> None:
    from bot import keys

    write(tmp_path, "optout.j2", "{{ '수신거부' }} 처리됐어요.")
    client = await make_client(
        server={
            "simulator": True,
            "public_url": "http://127.0.0.1:8080",
            "templates_dir": str(tmp_path),
        }
    )
    assert client.app[keys.SERVICES].texts.render("optout") == "수신거부 처리됐어요."


def test_a_shop_of_a_multi_shop_installation_has_its_own_words(tmp_path: Path) -> None:
    """A shop's `templates_dir` shadows the installation's, which shadows dangol's: every
    text rendered for that shop — and only for it — reads its folder first."""
    write(tmp_path / "server", "journey/survey.j2", "설치 공통: {{ shop.name }}")
    write(tmp_path / "server", "optout.j2", "설치 공통 수신거부")
    write(tmp_path / "hanbit", "journey/survey.j2", "한빛만: {{ shop.name }}")
    data = settings_dict()
    other = {**data["shops"][0], "slug": "other", "name": "다른설비"}
    data["shops"] = [{**data["shops"][0], "templates_dir": "hanbit"}, other]
    settings = parse(data, str(tmp_path / "config.toml"), tmp_path)
    hanbit, plain = settings.shops
    assert hanbit.templates_dir == str((tmp_path / "hanbit").resolve())
    texts = Texts(tmp_path / "server")
    assert texts.render("journey/survey", shop=hanbit) == "한빛만: 한빛설비"
    assert texts.render("journey/survey", shop=plain) == "설치 공통: 다른설비"
    assert texts.render("optout", shop=hanbit) == "설치 공통 수신거부"  # not overridden here
    assert texts.render("optout") == "설치 공통 수신거부"
    data["shops"][0]["templates_dir"] = "missing"
    with pytest.raises(ConfigErrors) as info:
        parse(data, str(tmp_path / "config.toml"), tmp_path)
    assert "shops[0].templates_dir: no such directory" in str(info.value)
