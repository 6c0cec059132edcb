"""`TwilioProvider`: one POST per message, `lookup` by SID or by listing, and a customer's
MMS attachments fetched with the account's credentials. (The mapping of every answer is
`providers.twilio.errors`; what Twilio posts to us is `providers.twilio.callbacks`.)"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

import aiohttp

from providers.base import (
    CannotTell,
    Capability,
    Option,
    Outgoing,
    PermanentError,
    Provider,
    ProviderConfigError,
    ProviderError,
    SendRef,
    SendResult,
    TokenBucket,
    TransientError,
    UnknownOutcome,
    mask_phone,
)
from providers.twilio.callbacks import MAX_MEDIA, map_status
from providers.twilio.errors import (
    error_for,
    json_object,
    media_error,
    media_too_large,
)

log = logging.getLogger("dangol.providers.twilio")

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ABSOLUTE_URL = re.compile(r"^https?://[^/\s?#]+(?:[/?#]\S*)?$")
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
LOOKUP_PAGE_SIZE = 50
LOOKUP_CLOCK_SKEW = timedelta(minutes=2)


@dataclass
class _Pending:
    """A send that may have left without an answer: what lookup needs to find it."""

    to: str
    sender: str | None  # From, when sending from a number (None with a Messaging Service)
    body: str
    started: datetime


class TwilioProvider(Provider):
    name = "twilio"
    capabilities = Capability.INITIATE | Capability.IMAGES | Capability.DELIVERY_REPORTS
    max_text_chars = MAX_BODY_CHARS
    rate_per_second = 1.0  # a US long code sends 1 message/second; see the option
    # One request per message: the outbox times each one on its own, so a request cut off
    # leaves only its own message in doubt (a batch of 50 at 1/s would outlast the limit).
    max_batch = 1
    options_spec: ClassVar[Mapping[str, Option]] = {
        "account_sid": Option(str, required=True, help="AC… from the Twilio console"),
        "auth_token": Option(str, required=True, secret=True, help="or auth_token_env"),
        "from_number": Option(str, help="sender in E.164 (+14155550199)"),
        "messaging_service_sid": Option(str, help="MG…, instead of from_number"),
        "base_url": Option(str, default="https://api.twilio.com"),
        "status_callback_url": Option(str, help="public URL Twilio posts delivery reports to"),
        "validity_period": Option(
            int, minimum=1, help="seconds Twilio may queue a message (1–36000); unset: Twilio's"
        ),
        "timeout": Option(float, default=15.0, minimum=0.1, help="seconds per HTTP call"),
        "rate_per_second": Option(float, default=1.0, minimum=0.01, help="messages per second"),
    }

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(options or {}, session)
        o = self.options
        if not str(o["account_sid"]).startswith("AC"):
            raise ProviderConfigError("providers.twilio.account_sid: must start with 'AC'")
        if bool(o["from_number"]) == bool(o["messaging_service_sid"]):
            raise ProviderConfigError(
                "providers.twilio.from_number: give exactly one of from_number "
                "or messaging_service_sid"
            )
        if o["from_number"] and not E164.match(o["from_number"]):
            raise ProviderConfigError(
                "providers.twilio.from_number: must be E.164, like +14155550199"
            )
        if o["messaging_service_sid"] and not str(o["messaging_service_sid"]).startswith("MG"):
            raise ProviderConfigError(
                "providers.twilio.messaging_service_sid: must start with 'MG'"
            )
        vp = o["validity_period"]
        if vp is not None and vp > 36000:
            raise ProviderConfigError("providers.twilio.validity_period: at most 36000 seconds")
        for key in ("base_url", "status_callback_url"):
            value = o[key]
            if value is not None and not re.match(r"^https?://[^/\s]+", value):
                raise ProviderConfigError(f"providers.twilio.{key}: must be an http(s) URL")
        # One bucket per configured account (one instance per [providers.twilio] table).
        self.rate_limit = TokenBucket(float(o["rate_per_second"]), monotonic=monotonic, sleep=sleep)
        self._base = str(o["base_url"]).rstrip("/")
        basic = base64.b64encode(f"{o['account_sid']}:{o['auth_token']}".encode()).decode()
        self._headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        self._pending: dict[str, _Pending] = {}
        self._claimed: dict[str, str] = {}  # sid -> ref, so two refs never share one message

    # -- plumbing

    @property
    def messages_url(self) -> str:
        return f"{self._base}/{API_VERSION}/Accounts/{self.options['account_sid']}/Messages.json"

    def _message_url(self, sid: str) -> str:
        return self.messages_url.removesuffix(".json") + f"/{sid}.json"

    def _timeout(self) -> aiohttp.ClientTimeout:
        total = float(self.options["timeout"])
        return aiohttp.ClientTimeout(total=total, connect=min(total, 5.0))

    # -- sending

    def form_for(self, msg: Outgoing) -> list[tuple[str, str]] | PermanentError:
        """The form fields for one message, or why it cannot be sent."""
        to = msg.recipient.phone
        if not to:
            return PermanentError("Twilio는 전화번호로만 보낼 수 있어요", code="no-phone")
        if not E164.match(to):
            return PermanentError(
                f"전화번호가 국제 형식(E.164)이 아니에요: {mask_phone(to)}", code="21211"
            )
        if len(msg.text) > MAX_BODY_CHARS:
            return PermanentError(
                f"본문이 너무 길어요: {len(msg.text)}자 (Twilio 최대 {MAX_BODY_CHARS}자)",
                code="21617",
            )
        media: list[str] = []
        if msg.has_image:
            # Twilio fetches the picture itself: only an absolute URL will do. Without one
            # the message is refused, not sent without the picture the owner attached.
            if not msg.image_url or not ABSOLUTE_URL.match(msg.image_url):
                return PermanentError(
                    "Twilio로 사진을 보내려면 공개 주소(server.public_url)의 사진 URL이 "
                    "필요해요 (서버의 파일은 보낼 수 없어요)",
                    code="media-url",
                )
            media.append(msg.image_url)
        if not msg.text.strip() and not media:
            return PermanentError("보낼 내용이 없어요", code="empty")
        o = self.options
        form: list[tuple[str, str]] = [("To", to)]
        if o["messaging_service_sid"]:
            form.append(("MessagingServiceSid", o["messaging_service_sid"]))
        else:
            form.append(("From", o["from_number"]))
        if msg.text:
            form.append(("Body", msg.text))
        form.extend(("MediaUrl", url) for url in media[:MAX_MEDIA])
        if o["status_callback_url"]:
            form.append(("StatusCallback", o["status_callback_url"]))
        if o["validity_period"] is not None:
            form.append(("ValidityPeriod", str(o["validity_period"])))
        return form

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        outcomes: list[SendResult | ProviderError] = []
        for msg in batch:
            try:
                outcomes.append(await self._send_one(msg))
            except ProviderError as exc:
                outcomes.append(exc)
        return outcomes

    async def _send_one(self, msg: Outgoing) -> SendResult | ProviderError:
        form = self.form_for(msg)
        if isinstance(form, PermanentError):
            return form
        await self.throttle()
        self._pending[msg.ref] = _Pending(
            to=form[0][1],
            sender=self.options["from_number"],
            body=msg.text,
            started=datetime.now(UTC),
        )
        path = "mms" if any(k == "MediaUrl" for k, _ in form) else "sms"
        try:
            status, headers, text = await self._request("POST", self.messages_url, form=form)
        except ProviderError as exc:
            if not isinstance(exc, UnknownOutcome):
                self._pending.pop(msg.ref, None)
            raise
        outcome = self._send_outcome(msg, status, headers, text, path)
        if not isinstance(outcome, UnknownOutcome):
            self._pending.pop(msg.ref, None)
        if isinstance(outcome, SendResult) and outcome.provider_message_id:
            self._claim(outcome.provider_message_id, msg.ref)
        return outcome

    def _claim(self, sid: str, ref: str) -> None:
        self._claimed[sid] = ref
        if len(self._claimed) > 10_000:  # bounded: the oldest claims go first
            for old in list(self._claimed)[:1000]:
                del self._claimed[old]

    async def _request(
        self,
        method: Literal["GET", "POST"],
        url: str,
        *,
        form: list[tuple[str, str]] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], str]:
        """One HTTP call; network failures mapped by whether the request may have left."""
        try:
            async with self.http().request(
                method,
                url,
                data=form,
                params=params,
                timeout=self._timeout(),
                headers=self._headers,
            ) as resp:
                text = await resp.text()
                return resp.status, dict(resp.headers), text
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing reached Twilio: safe to try again.
            raise TransientError(
                f"Twilio에 연결할 수 없어요 ({type(exc).__name__})", code="connect"
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UnknownOutcome("Twilio 응답 시간 초과", code="timeout") from exc
        except aiohttp.ClientError as exc:
            # Reset / disconnected / broken payload after the request left.
            raise UnknownOutcome(
                f"Twilio 연결이 끊겼어요 ({type(exc).__name__})", code="disconnected"
            ) from exc

    def _send_outcome(
        self, msg: Outgoing, status: int, headers: Mapping[str, str], text: str, path: str
    ) -> SendResult | ProviderError:
        if status in (200, 201):
            data = json_object(text)
            sid = data.get("sid") if data else None
            if not isinstance(sid, str) or not sid:
                return UnknownOutcome("Twilio가 알아볼 수 없는 응답을 보냈어요", code="bad-json")
            detail = f"twilio {data.get('status')}" if data and data.get("status") else ""
            return SendResult(
                ref=msg.ref, provider_message_id=sid, status="accepted", path=path, detail=detail
            )
        return error_for(status, headers, text)

    # -- a customer's MMS attachments

    def owns_media_url(self, url: str) -> bool:
        """Whether `url` is a media resource of this account's messages: only then does it
        get our credentials (the webhook is signed, but a key goes nowhere else regardless)."""
        prefix = self.messages_url.removesuffix(".json") + "/"
        return url.startswith(prefix) and "/Media/" in url[len(prefix) :]

    async def fetch_media(self, url: str, *, max_bytes: int) -> bytes:
        """Download an inbound message's attachment (PROTOCOLS §5.1: Basic auth; Twilio
        answers with a redirect to its CDN). TransientError: try again; PermanentError: no."""
        if not self.owns_media_url(url):
            raise PermanentError("이 Twilio 계정의 첨부 주소가 아니에요", code="media-url")
        # aiohttp drops the header when the redirect leaves this origin (Twilio's CDN).
        auth = {"Authorization": self._headers["Authorization"]}
        try:
            async with self.http().get(url, headers=auth, timeout=self._timeout()) as resp:
                if resp.status != 200:
                    raise media_error(resp.status, dict(resp.headers))
                if (resp.content_length or 0) > max_bytes:
                    raise media_too_large(max_bytes)
                data = await resp.content.read(max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(
                f"Twilio에서 첨부를 받지 못했어요 ({type(exc).__name__})", code="media-fetch"
            ) from exc
        if len(data) > max_bytes:
            raise media_too_large(max_bytes)
        return data

    # -- lookup

    async def lookup(self, ref: SendRef) -> SendResult | None:
        if ref.provider_message_id:
            return await self._lookup_sid(ref.ref, ref.provider_message_id)
        # This process's own record of the attempt is the most exact; any other process
        # searches by what the outbox row holds.
        pending = self._pending.get(ref.ref) or self._pending_from(ref)
        if pending is None:
            raise CannotTell("twilio cannot find a send without its SID, recipient and text")
        return await self._lookup_listing(ref.ref, pending)

    def _pending_from(self, ref: SendRef) -> _Pending | None:
        """The attempt as the outbox row describes it: to whom, what text, from when."""
        phone = ref.recipient.phone if ref.recipient is not None else None
        if not phone or ref.text is None or ref.attempted_at is None:
            return None
        return _Pending(
            to=phone, sender=self.options["from_number"], body=ref.text, started=ref.attempted_at
        )

    async def _lookup_sid(self, ref: str, sid: str) -> SendResult:
        if not _SID.match(sid):
            raise CannotTell(f"twilio cannot look up {sid!r}: not a message SID")
        status, headers, text = await self._request("GET", self._message_url(sid))
        if status == 404:  # Twilio gave us this SID, so it took the message; then deleted it?
            raise CannotTell("twilio no longer has the message it accepted")
        if status != 200:
            raise error_for(status, headers, text)
        found = _result_from_resource(ref, json_object(text) or {})
        if found is None:
            raise UnknownOutcome("Twilio가 알아볼 수 없는 응답을 보냈어요", code="bad-json")
        return found

    async def _lookup_listing(self, ref: str, pending: _Pending) -> SendResult | None:
        params = {"To": pending.to, "PageSize": str(LOOKUP_PAGE_SIZE)}
        if pending.sender:
            params["From"] = pending.sender
        status, headers, text = await self._request("GET", self.messages_url, params=params)
        if status != 200:
            raise error_for(status, headers, text)
        data = json_object(text)
        messages = data.get("messages") if data else None
        if not isinstance(messages, list):
            raise UnknownOutcome("Twilio가 알아볼 수 없는 목록을 보냈어요", code="bad-json")
        since = pending.started - LOOKUP_CLOCK_SKEW
        candidates: list[tuple[datetime, dict[str, Any]]] = []
        oldest: datetime | None = None  # the page's oldest: Twilio lists newest first
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("sid"), str):
                continue
            created = _parse_date(m.get("date_created"))
            if created is not None and (oldest is None or created < oldest):
                oldest = created
            if self._claimed.get(m["sid"], ref) != ref:
                continue
            if not str(m.get("direction", "outbound")).startswith("outbound"):
                continue
            if m.get("body") != pending.body:
                continue
            if created is None or created < since:
                continue
            candidates.append((created, m))
        if not candidates:
            if len(messages) >= LOOKUP_PAGE_SIZE and (oldest is None or oldest >= since):
                # A full page that does not reach back to the attempt: not a "not found".
                raise TransientError(
                    "Twilio 목록에 메시지가 너무 많아 찾지 못했어요", code="lookup-window"
                )
            return None
        _, found = min(candidates, key=lambda c: c[0])
        result = _result_from_resource(ref, found)
        if result is not None and result.provider_message_id:
            self._claim(result.provider_message_id, ref)
            self._pending.pop(ref, None)
        return result


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _result_from_resource(ref: str, data: Mapping[str, Any]) -> SendResult | None:
    sid = data.get("sid")
    if not isinstance(sid, str):
        return None
    twilio_status = str(data.get("status") or "")
    ours = map_status(twilio_status)
    media = str(data.get("num_media") or "0")
    path = "mms" if media not in ("", "0") or sid.startswith("MM") else "sms"
    code = data.get("error_code")
    detail = f"twilio {twilio_status}" + (f" ({code})" if code else "")
    return SendResult(
        ref=ref,
        provider_message_id=sid,
        # The message left either way; a failure is reported by its status (callback).
        status="delivered" if ours == "delivered" else "accepted",
        path=path,
        detail=detail,
    )
