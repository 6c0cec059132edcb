"""The owner's first day in the console, in a real browser (issue: counts that go stale, a
header that contradicts the bot, who replied, the small things).

Same harness as test_browser.py (the real `dangol demo`, Debian's Chromium, phone size),
with one difference: this module's demo shop is closed for a few days from today (a
closure in its config), so what customers are told does not depend on the hour the tests
run at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.browser import (
    Demo,
    Phone,
    _need_browser,
    browser,
    inbox_ids,
    log_in,
    open_simulator,
    phone,
    running_demo,
    say,
    send_reply,
    shot,
    start_conversation,
    wait_new_row,
)

from bot.cli import EXAMPLE

__all__ = ["browser", "phone"]  # the fixtures this module uses

CLOSURE = "테스트 휴무"


def _config(home: Path) -> Path:
    """The example config plus a closure from today (the shop's day) for three days."""
    cfg = home / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    today = datetime.now(ZoneInfo("Asia/Seoul")).date()
    with cfg.open("a", encoding="utf-8") as f:
        f.write(
            "\n[[shops.closures]]\n"
            f"start = {today.isoformat()}\n"
            f"end = {(today + timedelta(days=2)).isoformat()}\n"
            f'reason = "{CLOSURE}"\n'
        )
    return cfg


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    _need_browser()
    with running_demo(_config(tmp_path_factory.mktemp("demo-first-day"))) as running:
        yield running


LIVE_MS = 5_000

_CHIP_COUNT = """key => {
  const chip = Array.from(document.querySelectorAll(".filters a"))
    .find(a => a.textContent.trim().startsWith(key));
  const count = chip && chip.querySelector(".count");
  return count ? Number(count.textContent) : 0;
}"""
_NAV_COUNT = """() => {
  const count = document.getElementById("nav-waiting");
  return count && !count.hidden ? Number(count.textContent) : 0;
}"""


# ------------------------------------------------------------------ 6. live counts


def test_filter_counts_follow_the_nav_count_live(phone: Phone, demo: Demo) -> None:
    owner = phone()
    log_in(owner.page, demo)
    page = owner.page
    page.evaluate("window.__stayed = 1")
    before = {key: page.evaluate(_CHIP_COUNT, key) for key in ("전체", "답변 대기")}
    known = inbox_ids(page)

    sim = open_simulator(phone)
    say(sim.page, "수도꼭지가 계속 새요")
    wait_new_row(page, known, "수도꼭지가 계속 새요")
    page.wait_for_function(
        f"""([all, waiting]) => ({_CHIP_COUNT})("전체") === all
              && ({_CHIP_COUNT})("답변 대기") === waiting
              && ({_NAV_COUNT})() === waiting""",
        arg=[before["전체"] + 1, before["답변 대기"] + 1],
        timeout=LIVE_MS,
    )
    assert page.evaluate("window.__stayed") == 1, "the inbox reloaded instead of updating"
    shot(page, "20-live-counts.png")


def test_conversation_header_stops_waiting_once_answered(phone: Phone, demo: Demo) -> None:
    _, owner, _ = start_conversation(phone, demo, "배수구 냄새가 올라와요")
    page = owner.page
    assert page.locator(".conv-state .wait").is_visible()  # "방금 도착"
    waiting = page.evaluate(_NAV_COUNT)
    assert waiting >= 1
    page.evaluate("window.__stayed = 1")
    send_reply(page, "오늘 저녁에 확인해 드릴게요.")
    page.locator(".conv-state .wait").wait_for(state="detached", timeout=LIVE_MS)
    page.wait_for_function(f"n => ({_NAV_COUNT})() === n", arg=waiting - 1, timeout=LIVE_MS)
    assert page.evaluate("window.__stayed") == 1
    shot(page, "21-answered-header.png")


# ------------------------------------------------------------------ 7. what customers hear


def test_header_shows_what_customers_are_told(phone: Phone, demo: Demo) -> None:
    sim, owner, _ = start_conversation(phone, demo, "오늘 방문 가능하세요?")
    told = owner.page.locator("#told").inner_text()
    assert "대기 중" not in told
    assert told.startswith(f"휴무({CLOSURE})")
    # The bot said the same to the customer.
    answer = sim.page.locator(".group .bubble-bot:not(.bubble-owner)").last.inner_text()
    assert CLOSURE in answer
    shot(owner.page, "22-header-told.png")


# ------------------------------------------------------------------ 8. resolved complaints


def test_resolved_complaint_has_no_deadline_in_the_list(phone: Phone, demo: Demo) -> None:
    _, owner, conv_id = start_conversation(phone, demo, "수리한 곳이 또 새요, 정말 실망이에요")
    page = owner.page
    assert "까지" in page.locator(".conv-state .badge.complaint").inner_text()
    page.goto("/console/?filter=complaint")
    assert "까지" in page.locator(f"li.conv[data-id='{conv_id}'] .badge.complaint").inner_text()

    page.goto(f"/console/c/{conv_id}")
    page.locator(".conv-actions button", has_text="해결").click()
    page.locator(".state-resolved").wait_for()
    assert page.locator(".conv-state .badge.complaint").inner_text() == "불만"
    page.goto("/console/?filter=resolved")
    badge = page.locator(f"li.conv[data-id='{conv_id}'] .badge.complaint")
    assert badge.inner_text() == "불만"
    assert not re.search(r"까지", page.locator(f"li.conv[data-id='{conv_id}']").inner_text())
    shot(page, "23-resolved-complaint.png")


# ------------------------------------------------------------------ 9. who replied


def test_replies_are_signed_with_the_display_name(phone: Phone, demo: Demo) -> None:
    _, owner, conv_id = start_conversation(phone, demo, "견적 받아볼 수 있을까요?")
    page = owner.page
    send_reply(page, "네, 사진 보내 주세요.")
    signed = page.locator("#timeline li.msg.from-owner .who").last
    assert signed.inner_text() == "사장님"  # not the login name

    page.locator(".mainnav a", has_text="내 정보").click()
    page.fill("#display-name", "김한빛")
    page.click("main.account button.primary")
    page.wait_for_url(re.compile(r"/console/me\?saved=1"))
    assert "김한빛" in page.locator(".topbar .who").inner_text()
    shot(page, "24-my-details.png")

    page.goto(f"/console/c/{conv_id}")
    send_reply(page, "사진 확인했어요.")
    assert page.locator("#timeline li.msg.from-owner .who").last.inner_text() == "김한빛"
    # Set it back: the other tests' owner is 사장님 again.
    page.goto("/console/me")
    page.fill("#display-name", "")
    page.click("main.account button.primary")
    page.wait_for_url(re.compile(r"saved=1"))


# ------------------------------------------------------------------ 10. small things


def test_the_location_answer_links_both_maps(phone: Phone, demo: Demo) -> None:
    sim = open_simulator(phone)
    say(sim.page, "가게 위치가 어디예요?")
    bubble = sim.page.locator(".bubble-bot").filter(has_text="주소:").last
    bubble.wait_for()
    answer = bubble.inner_text()
    assert "https://map.naver.com/p/search/%EC%84%9C%EC%9A%B8" in answer
    assert "https://map.kakao.com/link/search/%EC%84%9C%EC%9A%B8" in answer
    shot(sim.page, "25-location.png")


def test_the_favicon_is_served(phone: Phone, demo: Demo) -> None:
    page = phone().page
    response = page.goto("/favicon.ico")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-type"] == "image/x-icon"


def test_the_composer_keeps_one_row_and_the_customer_is_above_it(phone: Phone, demo: Demo) -> None:
    _, owner, _ = start_conversation(phone, demo, "보일러 소리가 커요")
    page = owner.page
    # The demo ships saved replies, so the picker is there.
    assert page.locator("#composer .saved-picker").count() == 1
    tops = page.eval_on_selector_all(
        "#composer .composer-actions > *:not([hidden])",
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [Math.round(r.top), Math.round(r.right)]; })",
    )
    assert len(tops) >= 3
    assert len({top for top, _ in tops}) == 1, f"the buttons wrap: {tops}"
    assert max(right for _, right in tops) <= 390
    # On a phone the customer card comes before the thread and its sticky composer.
    card = page.locator("#customer").bounding_box()
    thread = page.locator("section.thread").bounding_box()
    assert card is not None
    assert thread is not None
    assert card["y"] < thread["y"]
    shot(page, "26-composer.png")


def test_conversation_notes_and_the_customer_memo_are_told_apart(phone: Phone, demo: Demo) -> None:
    _, owner, _ = start_conversation(phone, demo, "에어컨 청소 얼마예요?")
    page = owner.page
    page.fill("#reply-text", "지난번 청소 고객")
    page.click("#composer button[data-kind=note]")
    note = page.locator("#timeline li.msg.dir-note").filter(has_text="지난번 청소 고객")
    note.wait_for()
    assert note.locator(".note-label").inner_text().startswith("대화 메모")
    assert page.locator("#composer button[data-kind=note]").inner_text() == "대화 메모"
    memo = page.locator("#customer dt", has_text="고객 메모")
    assert memo.count() == 1
    # Empty, it says where the conversation's notes are rather than just "없음".
    assert "대화 메모는 대화 안에" in page.locator("#customer dd.notes").inner_text()


def test_saved_reply_variables_are_chips(phone: Phone, demo: Demo) -> None:
    owner = phone()
    log_in(owner.page, demo)
    page = owner.page
    page.goto("/console/saved-replies")
    assert "{{" not in page.locator("main").inner_text()  # words, not template syntax
    assert page.locator(".saved-item").count() >= 3  # the demo's own
    assert page.locator(".saved-item .var", has_text="고객 이름").count() >= 1
    page.fill("#new-title", "도착 안내")
    page.fill("#new-body", "님, 곧 도착해요.")
    page.evaluate("() => document.getElementById('new-body').setSelectionRange(0, 0)")
    page.locator(".add-saved .chip", has_text="고객 이름").click()
    assert page.input_value("#new-body") == "{{ customer.name }}님, 곧 도착해요."
    page.click(".add-saved button.primary")
    added = page.locator(".saved-item").filter(has_text="도착 안내")
    added.wait_for()
    assert added.locator(".var").inner_text() == "고객 이름"
    shot(page, "27-saved-replies.png")


def test_the_simulator_remembers_the_chat_after_a_reload(phone: Phone, demo: Demo) -> None:
    sim, owner, _ = start_conversation(phone, demo, "창문 실리콘 다시 해주세요")
    send_reply(owner.page, "토요일에 가능해요.")
    sim.page.locator(".bubble-owner").filter(has_text="토요일에 가능해요.").wait_for()
    sim.page.reload()
    sim.page.wait_for_selector("#text")
    chat = sim.page.locator("#chat")
    chat.locator(".bubble-me").filter(has_text="창문 실리콘 다시 해주세요").wait_for()
    assert chat.locator(".bubble-owner").filter(has_text="토요일에 가능해요.").count() == 1
    assert chat.locator(".bubble-bot:not(.bubble-owner)").count() >= 1
    shot(sim.page, "28-simulator-reload.png")
