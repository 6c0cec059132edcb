"""One fake vendor (tests/fakes: SOLAPI or Twilio) served on loopback as a process of its own,
for bench/crash.py.

    python bench/fake_vendors.py solapi [--port 0] [--latency 0.05]

Prints ``listening <port>`` once it serves, then runs until SIGTERM/SIGINT or until its
stdin closes (the harness holds the other end: if the harness dies, so does this).

Besides the vendor's own API, the app answers the harness on ``/_harness/``:

* ``GET  /_harness/received`` — every message the vendor accepted (duplicates included),
  as ``{"id", "text", "ref"}`` (ref: SOLAPI's ``customFields.ourId``; Twilio has none),
  with counts of send and lookup requests;
* ``POST /_harness/lookups`` ``{"fail": true|false}`` — while on, the vendor's lookup
  endpoints (SOLAPI ``GET /messages/v4/list``; Twilio's message list and fetch) answer 503,
  as a vendor in trouble does during a recovery.

``--latency`` holds each send's answer back that many seconds *after* the message is
recorded: the window in which a killed sender leaves a message sent but unrecorded.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.solapi import FakeSolapi
from fakes.twilio import FakeTwilio

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SOLAPI_KEY = "NCSCRASHKEY"
SOLAPI_SECRET = "crash-harness-secret"  # loopback only; the harness passes it to dangol
SOLAPI_SENDER = "0212345678"


class IndexedSolapi(FakeSolapi):
    """The fake SOLAPI, its message list found by bisecting on the creation time.

    The test fake filters every message for every page it serves: with thousands of
    messages, 50 rows reconciled at once (each lookup paging through the window) would make
    the fake, not dangol, the slow part. Same answers, as long as messages arrive in time
    order (they do here: the wall clock); should one not, the fake's own listing takes over.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._order: list[str] = []  # message ids in arrival order
        self._created: list[datetime] = []
        self._position: dict[str, int] = {}
        self._in_order = True

    def _index(self) -> None:
        for mid in itertools.islice(self.messages, len(self._order), None):
            created = _when(self.messages[mid]["dateCreated"])
            if self._created and created < self._created[-1]:
                self._in_order = False
            self._position[mid] = len(self._order)
            self._order.append(mid)
            self._created.append(created)

    async def _list(self, request: web.Request) -> web.Response:
        q = request.query
        self._index()
        by_window = q.get("criteria") == "dateCreated,dateCreated" and q.get("cond") == "gte,lte"
        if not (by_window and self._in_order):
            return await super()._list(request)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        low, high = (_when(v) for v in q.get("value", "").split(","))
        first = bisect.bisect_left(self._created, low)
        end = bisect.bisect_right(self._created, high)
        start = first
        if q.get("startKey"):
            at = self._position.get(q["startKey"], end)
            start = at if first <= at < end else end
        limit = int(q.get("limit", "20"))
        page = self._order[start : min(start + limit, end)]
        return web.json_response(
            {
                "startKey": q.get("startKey"),
                "nextKey": self._order[start + limit] if start + limit < end else None,
                "limit": limit,
                "messageList": {mid: self.messages[mid] for mid in page},
            }
        )


def _when(text: str) -> datetime:
    """A dateCreated or a query value, as the fake reads them ("+" arrives as a space)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))


class Vendor:
    """The fake, plus what the harness needs from outside: its log and the lookup switch."""

    def __init__(self, kind: str, latency: float) -> None:
        self.kind = kind
        self.latency = latency
        self.fail_lookups = False
        self.sends = 0
        self.lookups = 0
        self.lookups_refused = 0
        self.fake: FakeSolapi | FakeTwilio
        if kind == "solapi":
            self.fake = IndexedSolapi(
                api_key=SOLAPI_KEY, api_secret=SOLAPI_SECRET, senders=(SOLAPI_SENDER,)
            )
        else:
            self.fake = FakeTwilio()
        app = self.fake.app
        app.middlewares.append(self._middleware)
        app.router.add_get("/_harness/received", self._received)
        app.router.add_post("/_harness/lookups", self._set_lookups)

    def _is_lookup(self, request: web.Request) -> bool:
        if request.method != "GET":
            return False
        if self.kind == "solapi":
            return request.path == "/messages/v4/list"
        return "/Messages" in request.path and "/Media/" not in request.path

    def _is_send(self, request: web.Request) -> bool:
        if request.method != "POST" or request.path.startswith("/_harness/"):
            return False
        return request.path.endswith(("/send-many/detail", "/Messages.json"))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._is_lookup(request):
            self.lookups += 1
            if self.fail_lookups:
                self.lookups_refused += 1
                return _unavailable(self.kind)
        if not self._is_send(request):
            return await handler(request)
        self.sends += 1
        response = await handler(request)
        if self.latency:
            await asyncio.sleep(self.latency)  # recorded already: only the answer is late
        return response

    async def _received(self, request: web.Request) -> web.Response:
        found: list[dict[str, Any]] = []
        if isinstance(self.fake, FakeSolapi):
            for mid, m in self.fake.messages.items():
                fields = m.get("customFields") or {}
                found.append({"id": mid, "text": m.get("text", ""), "ref": fields.get("ourId")})
        else:
            for sid, m in self.fake.messages.items():
                found.append({"id": sid, "text": m.get("body", ""), "ref": None})
        return web.json_response(
            {
                "vendor": self.kind,
                "messages": found,
                "send_requests": self.sends,
                "lookups": self.lookups,
                "lookups_refused": self.lookups_refused,
            }
        )

    async def _set_lookups(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_lookups = bool(body.get("fail"))
        return web.json_response({"fail": self.fail_lookups})


def _unavailable(kind: str) -> web.Response:
    if kind == "solapi":
        body: dict[str, Any] = {"errorCode": "ServiceUnavailable", "errorMessage": "점검 중"}
    else:
        body = {"code": 20500, "message": "Service Unavailable", "status": 503}
    return web.json_response(body, status=503)


async def serve(kind: str, port: int, latency: float) -> None:
    vendor = Vendor(kind, latency)
    runner = web.AppRunner(vendor.fake.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))  # loopback only
    await web.SockSite(runner, sock).start()
    print(f"listening {sock.getsockname()[1]}", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The harness keeps our stdin open; EOF means it is gone and nobody will stop us.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        while await reader.read(4096):
            pass
        stop.set()

    watcher = asyncio.create_task(watch_stdin())
    await stop.wait()
    watcher.cancel()
    vendor.fake.release()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("vendor", choices=["solapi", "twilio"])
    p.add_argument("--port", type=int, default=0, help="default: any free port")
    p.add_argument("--latency", type=float, default=0.05, help="seconds before a send answers")
    args = p.parse_args()
    asyncio.run(serve(args.vendor, args.port, args.latency))


if __name__ == "__main__":
    main()
