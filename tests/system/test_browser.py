"""End to end in a real browser: the owner console and the customer simulator at phone size.

The real `dangol demo` runs as a subprocess (SQLite, a copy of config.example.toml in a
temporary directory, a free port) and Playwright drives the system Chromium — no browser is
downloaded. Each test is its own simulator customer (a fresh browser context has a fresh
customer key), so the tests share one server but not each other's conversations.

Without /usr/bin/chromium the tests skip — unless DANGOL_TEST_REQUIRE_BROWSER=1 (CI), where
they fail: a skip there would hide a broken build. Screenshots of every step are written to
tests/artifacts/ (git-ignored; CI keeps them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from support.browser import (
    LIVE_MS,
    Demo,
    Phone,
    browser,
    demo,
    in_view,
    inbox_ids,
    jpeg,
    log_in,
    open_simulator,
    owner_bubble,
    phone,
    say,
    send_reply,
    shot,
    start_conversation,
    wait_new_row,
)

__all__ = ["browser", "demo", "phone"]  # the fixtures this module uses


# ------------------------------------------------------------------ the tests


def test_live_two_way_conversation(phone: Phone, demo: Demo) -> None:
    """Log in with the printed password; a simulator customer's message appears in the open
    inbox without a reload; the owner answers; the customer gets the answer pushed."""
    owner = phone()
    log_in(owner.page, demo, screenshot="01-login.png")
    page = owner.page
    assert page.url.endswith("/console/")
    page.evaluate("window.__stayed = 1")  # gone if the page reloads or navigates
    known = inbox_ids(page)

    sim = open_simulator(phone)
    say(sim.page, "에어컨에서 물이 새요")
    started = time.monotonic()
    row = wait_new_row(page, known, "에어컨에서 물이 새요")
    live_seconds = time.monotonic() - started
    assert page.evaluate("window.__stayed") == 1, "the inbox reloaded instead of updating live"
    assert row.locator(".badge.unread").inner_text() == "1"
    assert row.locator(".wait").inner_text() == "방금 도착"
    assert "level-green" in (row.get_attribute("class") or "")
    conv_id = row.get_attribute("data-id")
    shot(page, "02-inbox-live.png")
    print(f"inbox updated {live_seconds:.2f} s after the simulator's answer")

    row.locator("a").click()
    page.wait_for_selector("#conversation")
    in_view(page, "#timeline li.msg")  # opens at the newest message
    timeline = page.locator("#timeline")
    assert timeline.locator("li.msg.from-customer").filter(has_text="에어컨에서 물이 새요").count()
    assert timeline.locator("li.msg.from-bot").count() >= 1  # the honest acknowledgement
    assert "시뮬레이터" in page.locator(".path-notice").inner_text()

    reply = "안녕하세요, 한빛설비입니다. 오늘 오후 3시에 방문드릴게요."
    send_reply(page, reply)
    sent = timeline.locator("li.msg.from-owner").filter(has_text=reply)
    sent.locator(".delivery").wait_for()
    shot(page, "03-conversation.png")

    bubble = owner_bubble(sim.page, reply)
    assert bubble.locator(".owner-label").inner_text() == "사장님"
    shot(sim.page, "04-simulator-reply.png")

    # The conversation is answered now: no longer waiting, and read.
    page.goto("/console/?filter=waiting")
    assert page.locator(f"li.conv[data-id='{conv_id}']").count() == 0


def test_photo_from_the_composer_reaches_the_timeline(
    phone: Phone, demo: Demo, tmp_path: Path
) -> None:
    sim, owner, _ = start_conversation(phone, demo, "실외기 사진 보내주실 수 있나요?")
    page = owner.page
    photo = jpeg(tmp_path / "현장.jpg")
    assert page.locator("#photo-pick").is_visible()
    page.set_input_files("#photo-input", str(photo))
    preview = page.locator("#photo-previews img")
    preview.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('#photo-previews img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    page.click("#composer button[data-kind=reply]")
    page.locator("#timeline li.msg.from-owner .attachments img").last.wait_for()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#timeline .attachments img'))"
        ".some(i => i.complete && i.naturalWidth === 640)"
    )
    in_view(page, "#timeline li.msg")
    assert page.locator("#photo-previews li").count() == 0  # the composer is empty again
    shot(page, "05-photo.png")

    # The customer gets the photo, without words.
    image = sim.page.locator(".bubble-owner img.photo").last
    image.wait_for(timeout=LIVE_MS)
    assert image.locator("xpath=..").locator(".text").count() == 0
    assert (image.get_attribute("src") or "").startswith("/p/")
    sim.page.wait_for_function(
        "() => { const i = document.querySelector('.bubble-owner img.photo');"
        " return i && i.complete && i.naturalWidth === 640; }"
    )
    shot(sim.page, "05-photo-simulator.png")


def test_resolve_moves_the_conversation_under_resolved(phone: Phone, demo: Demo) -> None:
    _, owner, conv_id = start_conversation(phone, demo, "보일러 점검 예약하고 싶어요")
    page = owner.page
    send_reply(page, "내일 오전 10시 괜찮으세요?")
    page.locator(".conv-actions button", has_text="해결").click()
    page.locator(".state-resolved").wait_for()
    assert page.locator("#composer.composer-closed").is_visible()

    page.goto("/console/")
    assert page.locator(f"li.conv[data-id='{conv_id}']").count() == 0
    page.locator(".filters a", has_text="해결됨").click()
    page.wait_for_url(re.compile(r"filter=resolved"))
    row = page.locator(f"li.conv[data-id='{conv_id}']")
    row.wait_for()
    assert "해결됨" in row.inner_text()
    assert page.locator(".filters a.current").inner_text().startswith("해결됨")
    shot(page, "06-resolved.png")


def test_internal_note_stays_in_the_console(phone: Phone, demo: Demo) -> None:
    sim, owner, _ = start_conversation(phone, demo, "세탁기 배수가 안 돼요")
    page = owner.page
    note = "메모: 지난번 부품 교체 고객, 단골 할인 적용"
    page.fill("#reply-text", note)
    page.click("#composer button[data-kind=note]")
    shown = page.locator("#timeline li.msg.dir-note").filter(has_text=note)
    shown.wait_for()
    assert "고객에게 보이지 않아요" in shown.inner_text()

    # A reply after the note: once it reaches the customer, the note would have too.
    reply = "내일 방문드릴게요."
    send_reply(page, reply)
    in_view(page, "#timeline li.msg")
    owner_bubble(sim.page, reply)
    assert note not in sim.page.locator("#chat").inner_text()
    assert sim.page.locator(".bubble-owner").count() == 1
    shot(page, "07-note.png")


XSS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=1</script>",
]


def test_customer_markup_is_inert_in_every_page(phone: Phone, demo: Demo) -> None:
    owner = phone()
    log_in(owner.page, demo)
    page = owner.page
    known = inbox_ids(page)
    sim = open_simulator(phone)
    for text in XSS:
        say(sim.page, text)
    assert sim.page.evaluate("typeof window.__pwned") == "undefined"
    for text in XSS:
        assert sim.page.locator(".bubble-me .text").filter(has_text=text).count() == 1

    # The live inbox (fragment swapped in by the script) …
    row = wait_new_row(page, known, XSS[-1])
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert row.locator(".preview").inner_text().endswith(XSS[-1])
    # … the inbox loaded whole …
    page.reload()
    row.wait_for()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("li.conv img").count() == 0
    # … and the conversation.
    row.locator("a").click()
    page.wait_for_selector("#conversation")
    in_view(page, "#timeline li.msg")
    bodies = page.locator("#timeline li.msg.from-customer .body").all_inner_texts()
    assert bodies == XSS
    assert page.locator("#timeline script, #timeline img").count() == 0
    # A reply re-renders the timeline through the script's fragment path.
    # The owner's own text is data too, in the console and on the customer's side.
    send_reply(page, XSS[0])
    in_view(page, "#timeline li.msg")
    assert page.locator("#timeline script, #timeline img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    shot(page, "08-xss.png")
    owner_bubble(sim.page, XSS[0])
    assert sim.page.locator("#chat img, #chat script").count() == 0
    assert sim.page.evaluate("typeof window.__pwned") == "undefined"
