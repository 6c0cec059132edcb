"""The survey page in a real browser, at phone size: the customer opens the link from the
satisfaction check, taps a score, writes a line and sends it — the page's inline style is
allowed by its CSP, the browser's Origin is accepted, and a low score opens the complaint.

The real `dangol demo` in a subprocess (support/browser.py); the job and its sent survey
are written into the demo's SQLite file, as the journey planner would leave them.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.browser import Demo, Phone, _need_browser, browser, phone, running_demo, shot

from bot.cli import EXAMPLE
from core.jobs import new_link_token

__all__ = ["browser", "phone"]  # the fixtures this module uses


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(home: Path) -> Iterator[Demo]:
    """`dangol demo` as support.browser runs it, in a folder this module knows."""
    _need_browser()
    cfg = home / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    with running_demo(cfg) as running:
        yield running


def _at(moment: datetime) -> str:
    """As core.models.UTCDateTime stores an instant in SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def survey_sent(db: Path, name: str) -> tuple[str, int, int]:
    """A customer of the demo shop, a job done a week ago and its survey sent an hour ago:
    (the link's secret, job id, conversation id)."""
    token, hashed = new_link_token()
    now = datetime.now(UTC)
    done, sent = _at(now - timedelta(days=7)), _at(now - timedelta(hours=1))
    with sqlite3.connect(db, timeout=30) as conn:
        (shop,) = conn.execute("SELECT id FROM shops WHERE slug = 'demo'").fetchone()
        customer = conn.execute(
            "INSERT INTO customers (shop_id, name, tier, tags, notes, created_at)"
            " VALUES (?, ?, 'bronze', '[]', '', ?)",
            (shop, name, done),
        ).lastrowid
        conversation = conn.execute(
            "INSERT INTO conversations (shop_id, customer_id, channel, status, complaint,"
            " unread_count, last_message_at, created_at)"
            " VALUES (?, ?, 'simulator', 'resolved', 0, 0, ?, ?)",
            (shop, customer, done, done),
        ).lastrowid
        job = conn.execute(
            "INSERT INTO jobs (shop_id, customer_id, conversation_id, service, service_name,"
            " address, starts_at, ends_at, status, notes, source, revision, booked_at, done_at,"
            " created_at, updated_at)"
            " VALUES (?, ?, ?, 'aircon', '에어컨 청소·수리', '서울시 마포구 비밀로 7', ?, ?,"
            " 'done', '', 'demo', 1, ?, ?, ?, ?)",
            (shop, customer, conversation, done, done, done, done, done, done),
        ).lastrowid
        conn.execute(
            "INSERT INTO journey_steps (shop_id, job_id, customer_id, step, key, kind, due_at,"
            " status, payload, token_hash, created_at, updated_at, sent_at)"
            " VALUES (?, ?, ?, 'survey', 'survey', 'info', ?, 'sent', '{}', ?, ?, ?, ?)",
            (shop, job, customer, sent, hashed, sent, sent, sent),
        )
    assert job is not None
    assert conversation is not None
    return token, job, conversation


def test_a_customer_answers_the_survey_on_a_phone(phone: Phone, demo: Demo, home: Path) -> None:
    db = home / "var" / "dangol.db"
    token, job, conversation = survey_sent(db, "김민수")
    customer = phone()
    page = customer.page
    page.goto(f"/s/{token}")
    assert "민수 고객님, 이번 서비스는 어떠셨나요?" in page.inner_text("legend")
    assert "김민수" not in page.content()
    # The inline stylesheet applies (a refused one would leave the radios as radios and log
    # a CSP error, which fails the test): the five scores sit side by side on the screen.
    boxes = [page.locator(".score span").nth(i).bounding_box() for i in range(5)]
    assert all(b is not None for b in boxes)
    tops = {round(b["y"]) for b in boxes if b is not None}
    assert len(tops) == 1, "one row of five buttons"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390, "no sideways scroll"
    shot(page, "40-survey-question.png")

    page.locator(".score", has_text="2").click()
    page.fill("#comment", "물이 또 새요 <b>급해요</b>")
    page.click("button[type=submit]")
    page.get_by_text("잘 받았어요").wait_for()
    text = page.inner_text("main")
    assert "2점 잘 받았어요" in text
    assert "사장님이 24시간 안에 직접 연락드릴게요" in text
    shot(page, "41-survey-thanks.png")

    with sqlite3.connect(db, timeout=30) as conn:
        score, channel, comment = conn.execute(
            "SELECT score, channel, comment FROM survey_answers WHERE job_id = ?", (job,)
        ).fetchone()
        status, complaint = conn.execute(
            "SELECT status, complaint FROM conversations WHERE id = ?", (conversation,)
        ).fetchone()
    assert (score, channel, comment) == (2, "web", "물이 또 새요 <b>급해요</b>")
    assert (status, complaint) == ("open", 1)  # opened again, with the complaint's badge
