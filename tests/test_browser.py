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

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from bot.cli import EXAMPLE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("DANGOL_TEST_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).parent / "artifacts"
# The machine has no way out: without these Chromium waits on the network at start-up.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "locale": "ko-KR",
    "timezone_id": "Asia/Seoul",
}
# The framed block the demo's start-up ends with (bot/cli.py demo_frame).
PASSWORD_LINES = re.compile(r"\|  username   (\S+) *\|\n\|  password   (\S+) ")
LIVE_MS = 5_000  # a customer's message must reach an open inbox within this, without reload
STEP_MS = 10_000  # any other wait


def _need_browser() -> None:
    reason = ""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install -y chromium fonts-noto-cjk)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[dev]')"
    if not reason:
        return
    if REQUIRE_BROWSER:
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------ the server


@dataclass
class Demo:
    url: str
    username: str
    password: str
    output: list[str] = field(default_factory=list)


def _read_lines(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`dangol demo` on a free port, with the owner account it printed."""
    _need_browser()
    home = tmp_path_factory.mktemp("demo")
    cfg = home / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    with running_demo(cfg) as running:
        yield running


@contextmanager
def running_demo(cfg: Path) -> Iterator[Demo]:
    """`dangol demo --config cfg` on a free port (in cfg's folder) until the block ends."""
    home = cfg.parent
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DANGOL_DEMO_SKILL_SECRET"}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--config", str(cfg), "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    output: list[str] = []
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, output), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "demo exited early:\n" + "".join(output)
            assert time.monotonic() < deadline, "demo did not start:\n" + "".join(output)
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        # Printed once the server listens: the reader may not have it yet.
        while not (found := PASSWORD_LINES.search("".join(output))):
            assert time.monotonic() < deadline, "the demo printed no owner password:\n" + "".join(
                output
            )
            time.sleep(0.1)
        yield Demo(url, found.group(1), found.group(2), output)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        if proc.stdout:
            proc.stdout.close()


# ------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Watched:
    """A page with its errors collected (uncaught exceptions, console errors such as a
    refused inline script): any of them fails the test."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page: Page = context.new_page()
        self.page.set_default_timeout(STEP_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        # Errors include CSP refusals; the browser's own favicon probe is the one 404 we allow.
        favicon = message.location.get("url", "").endswith("/favicon.ico")
        if message.type == "error" and not favicon:
            self.errors.append(f"{message.text} at {message.location}")


Phone = Callable[[], Watched]


@pytest.fixture
def phone(browser: Browser, demo: Demo) -> Iterator[Phone]:
    """Opens phone-sized pages in contexts of their own (a person each); closes them after."""
    contexts: list[BrowserContext] = []
    watched: list[Watched] = []

    def open_page() -> Watched:
        context = browser.new_context(base_url=demo.url, **PHONE)
        contexts.append(context)
        w = Watched(context)
        watched.append(w)
        return w

    yield open_page
    for context in contexts:
        context.close()
    errors = [e for w in watched for e in w.errors]
    assert not errors, f"script errors in the pages: {errors}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)


def log_in(page: Page, demo: Demo, screenshot: str | None = None) -> None:
    page.goto("/console/")
    page.wait_for_url(re.compile(r"/console/login"))
    page.fill("#username", demo.username)
    page.fill("#password", demo.password)
    if screenshot:
        shot(page, screenshot)
    page.click("button.primary[type=submit]")
    page.wait_for_selector("#inbox")


def inbox_ids(page: Page) -> set[str]:
    ids = page.eval_on_selector_all("li.conv", "rows => rows.map(r => r.dataset.id)")
    return set(ids)


def wait_new_row(page: Page, known: set[str], text: str, timeout: float = LIVE_MS) -> Locator:
    """The inbox row of a conversation not in `known` whose preview shows `text`."""
    found = page.wait_for_function(
        """([known, text]) => {
             const row = Array.from(document.querySelectorAll("li.conv")).find(
               r => !known.includes(r.dataset.id)
                    && r.querySelector(".preview").textContent.includes(text));
             return row ? row.dataset.id : null;
           }""",
        arg=[sorted(known), text],
        timeout=timeout,
    ).json_value()
    return page.locator(f"li.conv[data-id='{found}']")


def say(sim: Page, text: str) -> None:
    """The simulator's customer types `text` and sends it; returns when the shop answered."""
    answers = sim.locator(".group .bubble-bot:not(.bubble-owner)").count()
    sim.fill("#text", text)
    sim.click("#send")
    sim.locator(".row-me .bubble-me").filter(has_text=text).last.wait_for()
    sim.wait_for_function(
        "n => document.querySelectorAll('.group .bubble-bot:not(.bubble-owner)').length > n",
        arg=answers,
    )


def open_simulator(phone: Phone) -> Watched:
    sim = phone()
    sim.page.goto("/simulator")
    sim.page.wait_for_selector("#text")
    return sim


def start_conversation(phone: Phone, demo: Demo, text: str) -> tuple[Watched, Watched, str]:
    """A new simulator customer says `text`; the signed-in owner opens it. (sim, owner, id)"""
    owner = phone()
    log_in(owner.page, demo)
    known = inbox_ids(owner.page)
    sim = open_simulator(phone)
    say(sim.page, text)
    row = wait_new_row(owner.page, known, text)
    conv_id = row.get_attribute("data-id")
    assert conv_id
    row.locator("a").click()
    owner.page.wait_for_selector(f"#conversation[data-id='{conv_id}']")
    return sim, owner, conv_id


def send_reply(page: Page, text: str) -> None:
    page.fill("#reply-text", text)
    page.click("#composer button[data-kind=reply]")
    page.locator("#timeline li.msg.from-owner.dir-out").filter(has_text=text).wait_for()


def in_view(page: Page, selector: str) -> None:
    """The last element matching `selector` is on screen, not under the sticky composer:
    the console scrolls new messages into view as a chat app does."""
    page.wait_for_function(
        """selector => {
             const all = document.querySelectorAll(selector);
             const last = all[all.length - 1];
             const composer = document.getElementById("composer");
             if (!last || !composer) return false;
             const r = last.getBoundingClientRect();
             return r.top >= 0 && r.bottom <= composer.getBoundingClientRect().top + 1;
           }""",
        arg=selector,
        timeout=STEP_MS,
    )


def owner_bubble(sim: Page, text: str) -> Locator:
    bubble = sim.locator(".bubble-owner").filter(has_text=text)
    bubble.wait_for(timeout=LIVE_MS)
    return bubble


def jpeg(path: Path) -> Path:
    """A small photo as a phone camera would give: a gradient, JPEG."""
    image = Image.new("RGB", (640, 480))
    image.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(480) for x in range(640)])
    image.save(path, "JPEG", quality=85)
    return path


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
