"""A fake Twilio Messages API on loopback, with the failure matrix on cue.

    fake = FakeTwilio()
    server = await aiohttp_server(fake.app)          # pytest-aiohttp
    provider = TwilioProvider({... "base_url": str(server.make_url(""))})

    fake.opted_out.add("+14155550100")      # 400 code 21610
    fake.invalid.add("+14155550101")        # 400 code 21211 (any non-E.164 To is invalid too)
    fake.fail_next("429", retry_after=7)    # also "500", "503", "malformed", "reset",
                                            # "timeout_after_record", "timeout_before_record"

"…_after_record", "malformed" and "reset" create the message before misbehaving, like a
vendor that took the message and then lost the answer: `lookup` must find it.

`signed_request` builds a status callback / inbound SMS signed with the real `twilio`
package's RequestValidator, for webhook tests.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from twilio.request_validator import RequestValidator

from fakes import FailureScript

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token"
SIGNATURE_HEADER = "X-Twilio-Signature"


@dataclass
class FakeTwilio(FailureScript):
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # sid -> resource
    requests: list[list[tuple[str, str]]] = field(default_factory=list)  # every create form
    opted_out: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)
    fetches: list[str] = field(default_factory=list)  # "GET <path>?<query>" of reads
    # customers' MMS attachments: media sid -> (bytes, content type); served after a redirect
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_failures: collections.deque[int] = field(default_factory=collections.deque)
    media_gets: int = 0  # requests for an attachment, refused ones included
    media_hang_after: int | None = None  # requests for an attachment after this many hang
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # date_created

    def __post_init__(self) -> None:
        super().__post_init__()
        self.app = web.Application()
        base = "/2010-04-01/Accounts/{account}/Messages"
        self.app.router.add_post(base + ".json", self._create)
        self.app.router.add_get(base + ".json", self._list)
        self.app.router.add_get(base + "/{sid}.json", self._fetch)
        self.app.router.add_get(base + "/{sid}/Media/{media}", self._media)
        self.app.router.add_get("/cdn/{media}", self._cdn)
        self.app.on_shutdown.append(self._on_shutdown)

    # -- the script

    def add_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        """Keep an attachment of an inbound MMS; returns its path (MediaUrl = base + path)."""
        sid = "ME" + secrets.token_hex(16)
        self.media[sid] = (data, content_type)
        message = "MM" + secrets.token_hex(16)
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message}/Media/{sid}"

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        self.messages[sid]["status"] = status
        self.messages[sid]["error_code"] = error_code

    def sent_to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["to"] == number]

    async def _on_shutdown(self, app: web.Application) -> None:
        self.release()

    # -- handlers

    def _authorized(self, request: web.Request) -> bool:
        if request.match_info["account"] != self.account_sid:
            return False
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return secrets.compare_digest(header, f"Basic {expected}")

    async def _media(self, request: web.Request) -> web.StreamResponse:
        """Like Twilio: credentials checked here, then a redirect to the file on its CDN."""
        self.media_gets += 1
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        if self.media_hang_after is not None and self.media_gets > self.media_hang_after:
            await self._hang()
        if self.media_failures:
            status = self.media_failures.popleft()
            return _error(status, 20500 if status >= 500 else 20404, f"HTTP {status}")
        sid = request.match_info["media"]
        if sid not in self.media:
            return _error(404, 20404, "The requested resource was not found")
        raise web.HTTPTemporaryRedirect(f"/cdn/{sid}")

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        data, content_type = self.media[request.match_info["media"]]
        return web.Response(body=data, content_type=content_type)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        failure = self._next_failure()
        if failure and failure.kind == "timeout_before_record":
            await self._hang()
            return _error(503, 20500, "gave up")
        form = await request.post()
        pairs = [(k, str(v)) for k, v in form.items()]
        self.requests.append(pairs)
        if failure and failure.kind == "429":
            return _error(429, 20429, "Too Many Requests", {"Retry-After": failure.retry_after})
        if failure and failure.kind in ("500", "503"):
            return _error(int(failure.kind), 20500, "Internal Server Error")
        to = str(form.get("To", ""))
        sender = form.get("From")
        service = form.get("MessagingServiceSid")
        body = str(form.get("Body", ""))
        media = form.getall("MediaUrl", [])
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if to in self.invalid or not (to.startswith("+") and to[1:].isdigit()):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.opted_out:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if len(body) > 1600:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not body and not media:
            return _error(400, 21602, "Message body is required.")
        resource = self._record(to, sender, service, body, len(media))
        if failure and failure.kind == "timeout_after_record":
            await self._hang()
        elif failure and failure.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more to say on a dead connection
        elif failure and failure.kind == "malformed":
            return web.Response(status=201, text='{"sid": "SM', content_type="application/json")
        return web.json_response(resource, status=201)

    def _record(
        self, to: str, sender: Any, service: Any, body: str, num_media: int
    ) -> dict[str, Any]:
        prefix = "MM" if num_media else "SM"
        sid = prefix + secrets.token_hex(16)
        now = format_datetime(self.now(), usegmt=True)
        resource = {
            "sid": sid,
            "account_sid": self.account_sid,
            "messaging_service_sid": str(service) if service else None,
            "to": to,
            "from": str(sender) if sender else None,
            "body": body,
            "status": "accepted" if service else "queued",
            "direction": "outbound-api",
            "num_segments": str(max(1, -(-len(body) // 153))),
            "num_media": str(num_media),
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "api_version": "2010-04-01",
            "price": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        self.messages[sid] = resource
        return resource

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        self.fetches.append(f"GET {request.path_qs}")
        resource = self.messages.get(request.match_info["sid"])
        if resource is None:
            return _error(404, 20404, "The requested resource was not found")
        return web.json_response(resource)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        self.fetches.append(f"GET {request.path_qs}")
        q = request.query
        found = [
            m
            for m in reversed(self.messages.values())  # newest first, like Twilio
            if ("To" not in q or m["to"] == q["To"]) and ("From" not in q or m["from"] == q["From"])
        ]
        size = int(q.get("PageSize", "50"))
        return web.json_response({"messages": found[:size], "page": 0, "page_size": size})


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


# --------------------------------------------------------------------------- signed webhooks


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature as Twilio computes it (the real library, not ours)."""
    return str(RequestValidator(token).compute_signature(url, form))


def signed_request(
    url: str, form: dict[str, str], token: str = AUTH_TOKEN
) -> tuple[dict[str, str], str]:
    """(headers, body) for a form POST to `url` exactly as Twilio would send it."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: sign(url, form, token),
        "User-Agent": "TwilioProxy/1.1",
    }
    return headers, urlencode(form)


def status_callback_form(
    sid: str,
    status: str,
    *,
    to: str = "+14155550123",
    sender: str = "+14155550199",
    error_code: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": account_sid,
        "From": sender,
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        form["ErrorCode"] = error_code
    return form


def inbound_sms_form(
    body: str,
    *,
    sender: str = "+14155550123",
    to: str = "+14155550199",
    media: list[tuple[str, str]] | None = None,
    opt_out_type: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    sid = "SM" + secrets.token_hex(16)
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": account_sid,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": str(len(media or [])),
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "FromCountry": "US",
        "ToCountry": "US",
    }
    for i, (url, content_type) in enumerate(media or []):
        form[f"MediaUrl{i}"] = url
        form[f"MediaContentType{i}"] = content_type
    if opt_out_type:
        form["OptOutType"] = opt_out_type
    return form
