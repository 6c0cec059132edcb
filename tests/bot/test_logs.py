"""What reaches the log: no whole phone number, no secret from a URL path, no message body.

The handler is the one `bot.logs.setup` installs, fed by aiohttp's own access logger
serving real requests on loopback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from bot import logs
from core.config import LoggingConfig
from providers.base import Outgoing, Recipient
from providers.console import ConsoleProvider

TOKEN = "Zq3v9KpL0mXw7RtY2bNc5HdJ8sFgA1eU"  # the SOLAPI webhook token in the path
PHOTO = "Qm9vbGVhbkZha2VQaG90b05hbWUxMjM0.jpg"


@pytest.fixture
def installed(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """`logs.setup` as `dangol serve` runs it; the root logger restored afterwards."""
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    saved = (root.handlers[:], root.level, access.level)

    def install(fmt: str) -> None:
        logs.setup(LoggingConfig(level="INFO", format=fmt))  # type: ignore[arg-type]

    try:
        yield install
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        access.setLevel(saved[2])


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _requests(aiohttp_client: Any) -> None:
    app = web.Application()
    app.router.add_post("/hooks/solapi/{shop}/{token}", _ok)
    app.router.add_get("/p/{name}", _ok)
    client = await aiohttp_client(app)
    await client.post(f"/hooks/solapi/demo/{TOKEN}", data=b"[]")
    referer = f"https://bot.example.com/p/{PHOTO}?from=+821055556666"
    await client.get(f"/p/{PHOTO}", headers={"Referer": referer})
    await client.close()


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_the_access_log_masks_the_webhook_token_and_photo_links(
    fmt: str, installed: Any, aiohttp_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    installed(fmt)
    await _requests(aiohttp_client)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "/hooks/solapi/" in line or "/p/" in line]
    assert len(lines) == 2, err
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert entries[1]["request_header"]["Referer"].startswith("https://bot.example.com/p/***")
    assert "/hooks/solapi/demo/********" in lines[0]
    assert "/p/********" in lines[1]
    assert TOKEN not in err
    assert PHOTO.removesuffix(".jpg") not in err
    assert "55556666" not in err
    assert "5555-6666" not in err


def test_structured_extras_are_redacted_too(
    installed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    installed("json")
    extra = {"to": "+82 10 5555 6666", "tried": ["821055556666"], "headers": {"path": "/p/x.jpg"}}
    logging.getLogger("dangol.test").info("sending", extra=extra)
    entry = json.loads(capsys.readouterr().err)
    assert entry["to"] == "010-****-6666"
    assert entry["tried"] == ["010-****-6666"]
    assert entry["headers"] == {"path": "/p/********"}


def test_redact_keeps_the_rest_of_the_line() -> None:
    line = '127.0.0.1 [22/Nov/2026:17:13:36 +0900] "POST /hooks/solapi/demo/abc123 HTTP/1.1" 200'
    assert logs.redact(line) == line.replace("abc123", "********")
    assert logs.redact("GET /console/c/12 from 82-10-5555-6666") == (
        "GET /console/c/12 from 010-****-6666"
    )


async def test_the_console_provider_logs_no_body_unless_told_to(
    installed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real install's console provider (the owner's channel until they pick one) logs
    that it "sent", never the customer's words; `show_text` (the demo's) prints them."""
    installed("text")
    words = "에어컨에서 물이 새요"
    msg = Outgoing("1", Recipient(phone="+821022223333", owner=True), f"[단골] 새 문의: {words}")
    await ConsoleProvider({}).send([msg])
    line = capsys.readouterr().err
    assert "[console] path=console" in line
    assert "owner 010-****-3333" in line
    assert words not in line

    await ConsoleProvider({"show_text": True}).send([msg])
    assert words in capsys.readouterr().err
