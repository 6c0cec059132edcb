"""A job's whole journey on two phones (issue 13): the owner books it from a simulator
conversation; the customer gets the confirmation, the evening-before reminder, the
on-my-way, a progress photo and the completion summary in the simulator; a week later the
satisfaction check arrives with its 1–5 buttons, the customer taps 2점 — and the owner's
inbox shows the complaint.

The demo runs in this process on a clock the test moves (tests/support/time_travel.py):
`advance` moves it and returns once every tick has run what fell due, so nothing here
sleeps or waits for a wall-clock day.
"""

from __future__ import annotations

import re
from pathlib import Path

from support.browser import (
    LIVE_MS,
    Phone,
    Watched,
    browser,
    jpeg,
    log_in,
    phone,
    shot,
    start_conversation,
)
from support.time_travel import TravellingDemo
from support.time_travel import travelling_demo as demo

__all__ = ["browser", "demo", "phone"]  # the fixtures this module uses


def open_as_owner(owner: Watched, demo: TravellingDemo, url: str) -> None:
    """Go to `url`; after a day on the moved clock the console session has timed out, as it
    would on the owner's phone: sign in again first."""
    owner.page.goto(url)
    if "/console/login" in owner.page.url:
        log_in(owner.page, demo)
        owner.page.goto(url)


def shop_says(sim: Watched, text: str) -> None:
    """The simulator's customer sees a message from the shop (not the owner's label) with
    `text`, pushed live."""
    sim.page.locator(".bubble-bot").filter(has_text=text).last.wait_for(timeout=LIVE_MS)


def test_a_job_from_booking_to_the_satisfaction_check(
    phone: Phone, demo: TravellingDemo, tmp_path: Path
) -> None:
    # Monday 09:30: the customer writes, the owner opens the conversation.
    sim, owner, conv_id = start_conversation(
        phone, demo, "에어컨 청소 예약하고 싶어요. 내일 오후 괜찮으세요?"
    )
    page = owner.page

    # 예약 잡기 → tomorrow 14:00 (the form's day defaults to tomorrow by the shop's clock).
    page.locator(".conv-actions a", has_text="예약 잡기").click()
    page.wait_for_url(re.compile(rf"/console/jobs/new\?conversation={conv_id}$"))
    page.select_option("#b-service", "aircon")
    page.fill("#b-start", "14:00")
    page.fill("#b-address", "서울시 마포구 월드컵로 12, 101동 202호")
    page.fill("#b-price", "80000")
    page.click("#btn-book")
    page.wait_for_url(re.compile(r"/console/jobs/\d+$"))
    job_url = page.url

    # The confirmation reaches the simulator at once.
    demo.settle()
    shop_says(sim, "예약이 확정됐어요")
    shot(sim.page, "70-journey-confirmation.png")

    # 18:00 the evening before: the reminder, with 확인 / 일정 변경.
    demo.advance(hours=9)  # Monday 18:30
    shop_says(sim, "방문 예정이에요")
    sim.page.locator(".quick .chip", has_text="확인").wait_for(timeout=LIVE_MS)

    # Tuesday 13:40: 출발 with the default ETA; the customer is told.
    demo.advance(hours=19, minutes=10)
    open_as_owner(owner, demo, job_url)
    page.click("#btn-depart")
    page.locator(".job-head .job-status", has_text="이동 중").wait_for()
    demo.settle()
    shop_says(sim, "지금 출발했어요")

    # A progress photo from the camera goes to the customer with its caption.
    page.set_input_files("#job-photo-file", str(jpeg(tmp_path / "실외기.jpg")))
    page.locator("#job-photo-preview").wait_for()
    page.select_option("#job-photo-phase", "before")
    page.fill("#job-photo-caption", "작업 전 실외기")
    page.click("#btn-photo")
    page.locator("#job-photos .thumbs img").wait_for()
    demo.settle()
    shop_says(sim, "작업 전 실외기")
    sim.page.locator(".bubble-bot img.photo").last.wait_for(timeout=LIVE_MS)

    # 작업 완료: the summary with the day's care tip and the warranty.
    demo.advance(hours=2)
    open_as_owner(owner, demo, job_url)
    page.locator("#complete summary").click()
    page.click("#btn-complete")
    page.locator(".job-head .job-status", has_text="완료").wait_for()
    demo.settle()
    shop_says(sim, "작업을 마쳤어요")
    shop_says(sim, "무상 A/S 6개월")
    shot(sim.page, "71-journey-completion.png")

    # A week later the satisfaction check arrives with its buttons; the customer taps 2점.
    demo.advance(days=7)
    shop_says(sim, "어떠셨나요?")
    chip = sim.page.locator(".quick .chip", has_text="2점")
    chip.wait_for(timeout=LIVE_MS)
    shot(sim.page, "72-journey-survey.png")
    chip.click()
    shop_says(sim, "불편을 드려 죄송해요")

    # The owner's inbox shows the complaint on that conversation, with its deadline.
    open_as_owner(owner, demo, "/console/?filter=complaint")
    row = page.locator(f"li[data-id='{conv_id}']")
    row.wait_for()
    assert "불만" in row.locator(".badge.complaint").inner_text()
    # The job page holds the answer and every step's state.
    open_as_owner(owner, demo, job_url)
    assert "2점" in page.locator("body").inner_text()
    shot(page, "73-journey-job-page.png")
    assert not sim.errors, sim.errors
    assert not owner.errors, owner.errors
