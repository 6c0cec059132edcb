"""The browser harness: the real `dangol demo` as a subprocess, Debian's Chromium driven by
Playwright at phone size, and the steps the browser tests share.

The fixtures (`demo`, `browser`, `phone`) are imported by the modules that use them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
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
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
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
# The framed block the demo's start-up ends with (bot/demo.py demo_frame).
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


def _read_lines(stream: Any, into: list[str], started: threading.Event) -> None:
    """Collect the demo's output; `started` once its framed block (printed when the server
    listens) has closed — or the output has ended."""
    frame_lines = 0
    for line in stream:
        into.append(line)
        frame_lines += line.startswith("+--")
        if frame_lines == 2:
            started.set()
    started.set()


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
    started = threading.Event()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, output, started), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert started.wait(60), "demo did not start:\n" + "".join(output)
        found = PASSWORD_LINES.search("".join(output))
        assert found, "demo exited or printed no owner password:\n" + "".join(output)
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:  # noqa: S310
            assert r.status == 200
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
