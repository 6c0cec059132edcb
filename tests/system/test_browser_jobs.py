"""A day's job on a phone (issue 13, the console's part): the owner books a job from a
conversation, finds it on the 작업 tab, sets out with an ETA, adds a photo from the camera
and finishes it — and the job's page shows each step of its journey, planned or sent.

Same harness as test_browser.py: the real `dangol demo` in a subprocess, Debian's
Chromium, a phone-sized window; the customer comes from the simulator. The demo's own
database is read (read-only) to check the rows behind what the page shows. Sending the
steps is the journey planner's: this test holds only what the console shows and stores.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.browser import (
    STEP_MS,
    Demo,
    Phone,
    _need_browser,
    browser,
    jpeg,
    phone,
    running_demo,
    shot,
    start_conversation,
)

from bot.cli import EXAMPLE

__all__ = ["browser", "demo", "phone"]  # the fixtures this module uses

KST = ZoneInfo("Asia/Seoul")
ADDRESS = "서울시 마포구 월드컵로 12, 101동 202호"
# What a step's state may read: planned ones until the journey planner sends them.
STATES = {"예정", "보낼 시각을 기다리는 중", "보냄", "건너뜀", "취소됨", "보내지 않음"}


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-jobs")


@pytest.fixture(scope="module")
def demo(demo_home: Path) -> Iterator[Demo]:
    """`dangol demo` in a folder this module knows, to read its database afterwards."""
    _need_browser()
    cfg = demo_home / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    with running_demo(cfg) as running:
        yield running


def query(home: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """The demo's database, read-only (the demo is still writing it)."""
    db = home / "var" / "dangol.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql, args))


def test_the_owner_books_a_job_from_a_conversation_and_walks_it_through(
    phone: Phone, demo: Demo, demo_home: Path, tmp_path: Path
) -> None:
    _, owner, conv_id = start_conversation(
        phone, demo, "에어컨에서 물이 새요. 내일 와주실 수 있나요?"
    )
    page = owner.page

    # 예약 잡기, in the conversation's header.
    page.locator(".conv-actions a", has_text="예약 잡기").click()
    page.wait_for_url(re.compile(rf"/console/jobs/new\?conversation={conv_id}$"))
    tomorrow = (datetime.now(KST) + timedelta(days=1)).date()
    assert page.input_value("#b-day") == tomorrow.isoformat()  # the default: tomorrow
    service = page.locator("#b-service option:checked").inner_text()
    page.fill("#b-start", "14:00")
    page.fill("#b-address", ADDRESS)
    page.fill("#b-price", "80000")
    page.fill("#b-notes", "실외기는 베란다에 있어요")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, "no sideways scroll"
    shot(page, "60-booking.png")
    page.click("#btn-book")
    page.wait_for_url(re.compile(r"/console/jobs/\d+$"))
    job_id = page.url.rsplit("/", 1)[-1]
    head = page.locator(".job-head").inner_text()
    assert service.split(" · ")[0] in head
    assert "14:00–" in head
    assert "예약" in head
    assert "80,000원" in page.locator(".facts").inner_text()
    steps = page.locator("#job-steps li.step")
    assert steps.first.locator(".step-label").inner_text() == "예약 확정"

    # The 작업 tab lists it under 내일, with the address's map link.
    page.locator(".mainnav a", has_text="작업").click()
    page.wait_for_url(re.compile(r"/console/jobs$"))
    assert page.locator(".mainnav a[aria-current=page]").inner_text() == "작업"
    row = page.locator(f"#day-{tomorrow.isoformat()} li.job[data-id='{job_id}']")
    assert row.is_visible()
    assert "내일" in page.locator(f"#day-{tomorrow.isoformat()} h2").inner_text()
    assert "14:00–" in row.inner_text()
    assert (row.locator("a.map-link").get_attribute("href") or "").startswith(
        "https://map.naver.com/p/search/"
    )
    for width in (390, 360):
        page.set_viewport_size({"width": width, "height": 844})
        overflow = page.evaluate(
            "() => [document.scrollingElement.scrollWidth,"
            " document.querySelector('.mainnav').scrollWidth]"
        )
        assert max(overflow) <= width, f"the tab scrolls sideways at {width} px: {overflow}"
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "61-jobs-tab.png")

    # 출발 with an ETA: the customer is told, the page says when.
    row.locator("a.job-main").click()
    page.wait_for_url(re.compile(rf"/console/jobs/{job_id}$"))
    eta = (datetime.now(KST) + timedelta(minutes=40)).strftime("%H:%M")
    page.fill("#eta", eta)
    box = page.locator("#btn-depart").bounding_box()
    assert box is not None
    assert box["height"] >= 44, "출발 is thumb-sized"
    page.click("#btn-depart")
    page.locator(".job-head .job-status", has_text="이동 중").wait_for()
    assert f"{eta}쯤" in page.locator(".facts").inner_text()
    assert page.locator("#btn-depart").count() == 0
    page.locator("#job-steps li.step[data-step='on_my_way']").wait_for()

    # 사진 추가, from the camera: the photo appears under its phase.
    form = page.locator("#job-photo")
    assert form.is_visible()
    assert page.get_attribute("#job-photo-file", "capture") == "environment"
    page.set_input_files("#job-photo-file", str(jpeg(tmp_path / "실외기.jpg")))
    page.locator("#job-photo-preview").wait_for()
    page.select_option("#job-photo-phase", "before")
    page.fill("#job-photo-caption", "작업 전 실외기")
    page.click("#btn-photo")
    thumb = page.locator("#job-photos .thumbs img")
    thumb.wait_for(timeout=STEP_MS)
    page.wait_for_function(
        "() => { const i = document.querySelector('#job-photos .thumbs img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    assert "작업 전" in page.locator("#job-photos").inner_text()
    assert "작업 전 실외기" in page.locator("#job-photos").inner_text()
    page.locator("#job-steps li.step[data-step='photo']").wait_for()
    shot(page, "62-job-photo.png")

    # 작업 완료, confirmed.
    page.locator("#complete summary").click()
    page.click("#btn-complete")
    page.locator(".job-head .job-status", has_text="완료").wait_for()
    assert page.locator("#btn-complete").count() == 0

    # Every step of the journey is on the page, each with its state.
    shown = {
        s.get_attribute("data-key"): s.locator(".step-state").inner_text()
        for s in page.locator("#job-steps li.step").all()
    }
    for key in ("confirmation:r1", "on_my_way:r1", "completion", "survey", "survey_reminder"):
        assert key in shown, f"{key} missing from {shown}"
    assert any(k and k.startswith("photo:") for k in shown), shown
    assert set(shown.values()) <= STATES, shown
    assert shown["survey"] == "예정"  # a week away
    shot(page, "63-job-done.png")

    # The rows behind the page: the job, its photo and a step for each of them.
    ((status, price, conversation),) = query(
        demo_home, "SELECT status, price_krw, conversation_id FROM jobs WHERE id = ?", job_id
    )
    assert (status, price, str(conversation)) == ("done", 80000, conv_id)
    stored = dict(
        query(demo_home, "SELECT key, status FROM journey_steps WHERE job_id = ?", job_id)
    )
    assert stored.keys() == shown.keys()
    assert query(demo_home, "SELECT phase FROM photos WHERE job_id = ?", job_id) == [("before",)]

    # The customer panel beside the conversation lists the job.
    page.goto(f"/console/c/{conv_id}")
    history = page.locator("#job-history")
    assert "80,000원" in history.inner_text()
    assert history.locator(f"a[href='/console/jobs/{job_id}']").count() == 1
    assert "완료 1건" in page.locator("#jobs-done").inner_text()
