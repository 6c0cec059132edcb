"""SOLAPI (solapi.com, formerly CoolSMS): SMS/LMS/MMS, AlimTalk and Kakao brand messages.

Facts are in PROTOCOLS.md §2.3, §3 and §4. The adapter

* signs every request with a fresh ``HMAC-SHA256`` header (new date and salt each time, so a
  retry never trips ``DuplicatedSignature``);
* sizes texts by CP949 bytes (`providers.sms_text`): SMS ≤ 90 bytes, else LMS ≤ 2000 bytes
  with a subject ≤ 40; unencodable characters are substituted or refused, never sent as "?";
  texts over 2000 bytes are refused (see sms_text for why we do not split);
* sends a message with a picture as MMS: the JPEG at `Outgoing.image_path` is checked
  locally (jpg, ≤ 200 KB, ≤ 1500×1440 — refused with a Korean reason otherwise), uploaded
  with ``POST /storage/v1/files`` (type MMS), and the message carries the ``imageId``;
* sends an informational message with a `template` as AlimTalk (``ATA``) and an
  advertising one with a `template` as a brand message (브랜드 메시지, ``BMS_TEXT``, see
  `SolapiProvider.build_message`), both with SMS fallback;
* is the last line of defence for ads (`informational=False`), whatever carries them: a
  text that could never be lawful (no ``(광고)`` at the very start, no free opt-out line at
  the end — `providers.korean_ads`) is a PermanentError, and an ad outside its hours (brand
  message 08:00–20:00 KST, Kakao's rule; ad SMS/LMS/MMS 08:00–21:00 KST, the law's night ban)
  is `NotYet` until 08:00 KST, so the outbox waits, without counting a try. Consent, and
  the separate consent that would allow a night-time ad, are the send-time policy's job;
  the adapter cannot see them and so never sends an ad at night;
* sends a batch with one ``POST /messages/v4/send-many/detail`` (≤ 10 000 messages), our
  outbox id in ``customFields.ourId``; per-message failures are read from
  ``failedMessageList`` and classified by status code (`classify_status`);
* turns whole-call failures into one error per message (`send` never raises a
  ProviderError), so a message refused locally keeps its own reason;
* reconciles an unknown outcome with ``GET /messages/v4/list`` (`lookup`): by message id
  when we have it, else by a creation-date window around the attempt, matched on ourId;
  only a search read to its end answers "not there" — a failed one raises;
* (delivery-report webhooks are read by `providers.solapi_reports`.)

Error classification of a whole call (`SolapiProvider._request`):

=========================================  ===================  =========================
what happened                               error                why
=========================================  ===================  =========================
connect refused / DNS / connect timeout     TransientError       the request never left
timeout after connecting                    UnknownOutcome       SOLAPI may have taken it
disconnect/reset after connecting           UnknownOutcome       cannot tell whether it
                                                                 was read: look up first
HTTP 200 with unreadable JSON               UnknownOutcome       accepted, answer garbled
HTTP 403 RequestTimeTooSkewed,              TransientError       fresh date/salt next time
         DuplicatedSignature
HTTP 403 InvalidAPIKey,                     PermanentError       fix the credentials
         SignatureDoesNotMatch, other
HTTP 429                                    RateLimited          Retry-After honoured
HTTP 408                                    TransientError       request not read in full
other 4xx                                   PermanentError       the request is wrong
HTTP 5xx                                    UnknownOutcome       no idempotency key
=========================================  ===================  =========================

An image upload (``/storage/v1/files``) is classified the same way, except that what would
be an UnknownOutcome is a TransientError: nothing has gone to the customer yet, and an
upload that did arrive only leaves an unused file at SOLAPI.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

import aiohttp

from providers.base import (
    Capability,
    LookupAnswer,
    NotYet,
    OptedOut,
    Option,
    Outgoing,
    PermanentError,
    Provider,
    ProviderConfigError,
    ProviderError,
    RateLimited,
    Recipient,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
    parse_retry_after,
)
from providers.korean_ads import (
    AD_SMS_HOURS,
    BRAND_MESSAGE_HOURS,
    check_ad_marking,
    seconds_outside_hours,
)
from providers.sms_text import UNSHOWN, UnsendableText, size_mms_text, size_text

log = logging.getLogger("dangol.providers.solapi")

DEFAULT_BASE_URL = "https://api.solapi.com"
SEND_PATH = "/messages/v4/send-many/detail"
LIST_PATH = "/messages/v4/list"
STORAGE_PATH = "/storage/v1/files"
MAX_BATCH = 10_000
OUR_ID = "ourId"  # the customFields key carrying our outbox id
# MMS pictures (PROTOCOLS.md §2.3, 2026 table): jpg, 200 KB — read the strict way, 200 000
# bytes, so a file that passes here passes whichever "KB" SOLAPI means — ≤ 1500 × 1440 px.
MMS_MAX_BYTES = 200_000
MMS_MAX_WIDTH = 1500
MMS_MAX_HEIGHT = 1440
UPLOADS_AT_ONCE = 4

RETRYABLE_AUTH = frozenset({"RequestTimeTooSkewed", "DuplicatedSignature"})

# --------------------------------------------------------------------------- ads

# A 3108 while our clock says "inside the hours" is clock skew at an edge: ask again soon,
# and our own check decides whether it is morning yet or evening already.
SKEWED_WINDOW_RETRY = 60.0

# Brand-message targeting (§2.1): I = channel friends; M/N reach non-friends with marketing
# consent and need Kakao's approval (channels with ≥ 50 000 friends), so "I" is the default.
BRAND_TARGETING = ("I", "M", "N")


# --------------------------------------------------------------------------- status codes


def _codes(*items: int | tuple[int, int]) -> frozenset[str]:
    out: set[str] = set()
    for item in items:
        lo, hi = item if isinstance(item, tuple) else (item, item)
        out.update(str(c) for c in range(lo, hi + 1))
    return frozenset(out)


PERMANENT_DATA = _codes(
    1010, 1011, 1013, 1014, (1025, 1029), (1031, 1034), (1041, 1053), 3010, 3013, 3101, 3103,
    3105, 3106,
)  # fmt: skip
RECIPIENT = _codes(1060, 2060, 1061, 2061, 1064, 2064, 2254, 3032, 3047, 3050, 3054, 3055, 3059)
OPT_OUT = _codes(1061, 2061)
ACCOUNT = _codes(1020, 1030, 2230, 1062, 2062, 2063)
KAKAO_UNDELIVERABLE = _codes(3102, 3104, 3107)
KAKAO_OUTSIDE_HOURS = _codes(3108)
TRANSIENT = _codes(
    1024, 2024, 3024, 3012, 3014, (3040, 3045), 3048, 3053, 3056, 3057
)  # fmt: skip

# Short Korean labels for the owner's console; the vendor's statusMessage follows them.
_LABELS: dict[str, str] = {
    "1061": "수신거부(080) 번호",
    "2061": "수신거부(080) 번호",
    "1060": "차단된 번호",
    "2060": "차단된 번호",
    "1062": "발신번호 미등록",
    "2062": "발신번호 미등록",
    "1030": "SOLAPI 잔액 부족",
    "2230": "SOLAPI 잔액 부족",
    "2063": "SOLAPI 계정 차단",
    "1020": "SOLAPI 인증 오류",
    "1029": "보낼 수 없는 글자",
    "3104": "카카오톡 사용자가 아님",
    "3107": "알림톡 수신 불가(차단 또는 장기 미사용)",
    "3108": "카카오 메시지 발송 가능 시간(08–20시)이 아님",
}


class SolapiRecipientError(PermanentError):
    """The number cannot or must not receive (blocked, opted out, spam-flagged)."""

    @property
    def opt_out(self) -> bool:
        return isinstance(self, OptedOut)


class SolapiOptedOut(SolapiRecipientError, OptedOut):
    """1061/2061: the number opted out by 080 수신거부 — recorded as an opt-out."""


class SolapiAccountError(PermanentError):
    """Our SOLAPI account needs an operator (balance, sender number, key): fix, then requeue."""


def classify_status(code: str, message: str = "", *, now: datetime | None = None) -> ProviderError:
    """The error for a failed message's 4-digit status code (PROTOCOLS.md §2.3 table).

    Unlisted codes: 1xxx (rejected at intake) are permanent; 2xxx/3xxx (platform or carrier
    trouble after intake) are transient, bounded by the outbox's max_attempts.

    3108 (outside Kakao's 08:00–20:00) is not a fault of the message: given `now`, it is
    `NotYet` until 08:00 KST (or briefly, when `now` is inside the hours — clock skew at an
    edge), so the outbox waits for the morning rather than spending its attempts.
    """
    label = _LABELS.get(code, "")
    reason = " — ".join(p for p in (label, message) if p) or f"SOLAPI 상태 {code}"
    if code in KAKAO_OUTSIDE_HOURS and now is not None:
        wait = seconds_outside_hours(now, BRAND_MESSAGE_HOURS)
        return NotYet(reason, retry_after=SKEWED_WINDOW_RETRY if wait is None else wait, code=code)
    if code in OPT_OUT:
        return SolapiOptedOut(reason, code=code)
    if code in RECIPIENT:
        return SolapiRecipientError(reason, code=code)
    if code in ACCOUNT:
        return SolapiAccountError(reason, code=code)
    if code in PERMANENT_DATA or code in KAKAO_UNDELIVERABLE:
        return PermanentError(reason, code=code)
    if code in TRANSIENT or code in KAKAO_OUTSIDE_HOURS:
        return TransientError(reason, code=code)
    if code.startswith("1"):
        return PermanentError(reason, code=code)
    return TransientError(reason, code=code)


# --------------------------------------------------------------------------- auth


def signature(api_secret: str, date: str, salt: str) -> str:
    """hex(HMAC_SHA256(key=secret, msg=date + salt))."""
    return hmac.new(api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()


def auth_header(api_key: str, api_secret: str, date: str, salt: str) -> str:
    sig = signature(api_secret, date, salt)
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={sig}"


def parse_auth_header(value: str) -> dict[str, str] | None:
    """{'apikey','date','salt','signature'} (names lower-cased) or None if not HMAC-SHA256."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.upper() != "HMAC-SHA256":
        return None
    out: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            out[name.strip().lower()] = val.strip()
    return out


def default_salt() -> str:
    return secrets.token_hex(16)  # 32 characters, like the Node SDK


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- helpers


def to_national_number(recipient: Recipient) -> str:
    """01012345678 for +821012345678 / 010-1234-5678; PermanentError for others."""
    phone = recipient.phone
    if not phone:
        raise PermanentError("전화번호가 없어요", code="no_phone")
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+"):
        if not digits.startswith("82"):
            raise PermanentError(
                "해외 번호는 SOLAPI로 보내지 않아요 (Twilio를 설정하세요)", code="foreign_number"
            )
        rest = digits[2:]
        digits = rest if rest.startswith("0") else "0" + rest
    if not digits.startswith("0") or not 9 <= len(digits) <= 11:
        raise PermanentError("전화번호 형식이 잘못됐어요", code="bad_number")
    return digits


def _variable_name(name: str) -> str:
    return name if name.startswith("#{") and name.endswith("}") else f"#{{{name}}}"


def path_for_type(kind: str | None) -> str:
    if kind and kind.startswith("BMS_"):
        return "brand_message"
    return {"ATA": "alimtalk", "CTA": "friendtalk", "CTI": "friendtalk"}.get(
        kind or "", (kind or "solapi").lower()
    )


def _custom_ref(entry: Mapping[str, Any]) -> str | None:
    fields = entry.get("customFields")
    if isinstance(fields, Mapping):
        ref = fields.get(OUR_ID)
        return str(ref) if ref not in (None, "") else None
    return None


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds")


# Start-of-frame markers (baseline, progressive, lossless…) carry the picture's size;
# C4 (Huffman tables), C8 (reserved) and CC (arithmetic coding) do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header; None if `data` is not a JPEG."""
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # the image ends or its data starts before any frame
            return None
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return (width, height) if width and height else None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        i += 2 + length
    return None


def read_mms_image(path: str) -> bytes:
    """The bytes of a picture SOLAPI will take as MMS, or a PermanentError saying why not
    (blocking: run it in a thread)."""
    try:
        size = os.stat(path).st_size
        if size > MMS_MAX_BYTES:
            raise PermanentError(
                f"사진 파일이 너무 커요 ({size / 1000:.0f}KB, 문자(MMS)는 최대 200KB)",
                code="image_too_large",
            )
        with open(path, "rb") as f:
            data = f.read(MMS_MAX_BYTES + 1)
    except FileNotFoundError:
        raise PermanentError("보낼 사진 파일을 찾을 수 없어요", code="image_missing") from None
    except OSError as exc:
        raise PermanentError(
            f"보낼 사진 파일을 읽을 수 없어요 ({type(exc).__name__})", code="image_unreadable"
        ) from None
    if len(data) > MMS_MAX_BYTES:  # grew after the stat
        raise PermanentError(
            "사진 파일이 너무 커요 (문자(MMS)는 최대 200KB)", code="image_too_large"
        )
    found = jpeg_size(data)
    if found is None:
        raise PermanentError("문자(MMS)에는 JPG 사진만 보낼 수 있어요", code="image_not_jpeg")
    width, height = found
    if width > MMS_MAX_WIDTH or height > MMS_MAX_HEIGHT:
        raise PermanentError(
            f"사진이 너무 커요 ({width}×{height}, 문자(MMS)는 최대 "
            f"{MMS_MAX_WIDTH}×{MMS_MAX_HEIGHT})",
            code="image_dimensions",
        )
    return data


# --------------------------------------------------------------------------- the provider


class SolapiProvider(Provider):
    name = "solapi"
    capabilities = Capability.INITIATE | Capability.IMAGES | Capability.DELIVERY_REPORTS
    max_text_chars = 2000  # a first cut; the real limit is 2000 CP949 bytes (sms_text)
    rate_per_second = None
    max_batch = MAX_BATCH
    options_spec: ClassVar[Mapping[str, Option]] = {
        "api_key": Option(str, required=True, secret=True, help="SOLAPI API key"),
        "api_secret": Option(str, required=True, secret=True, help="SOLAPI API secret"),
        "sender": Option(str, required=True, help="pre-registered sender number (발신번호)"),
        "base_url": Option(str, default=DEFAULT_BASE_URL, help="API root (tests: fake)"),
        "pf_id": Option(
            str, default=None, help="Kakao channel id (pfId) for AlimTalk and brand messages"
        ),
        "brand_targeting": Option(
            str,
            default="I",
            choices=BRAND_TARGETING,
            help="brand-message targeting: I = channel friends (any channel); M/N reach "
            "marketing-consented non-friends and need Kakao's approval",
        ),
        "timeout": Option(float, default=10.0, minimum=0.01, help="seconds per request"),
    }

    # A lookup without a message id scans SOLAPI's list by creation date around the attempt.
    lookup_before = timedelta(minutes=5)  # clock skew between us and SOLAPI
    lookup_without_attempt = timedelta(hours=24)
    lookup_page_size = 500
    lookup_max_pages = 20  # more means too many messages in the window to search

    def __init__(
        self,
        options: Mapping[str, Any],
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        salt: Callable[[], str] = default_salt,
    ) -> None:
        super().__init__(options, session)
        sender = re.sub(r"[\s-]", "", str(self.options["sender"]))
        if not sender.isdigit() or not 8 <= len(sender) <= 11:
            raise ProviderConfigError(
                "providers.solapi.sender: expected the registered number, 8–11 digits"
            )
        self.sender = sender
        self.base_url = str(self.options["base_url"]).rstrip("/")
        self._clock = clock
        self._salt = salt

    # -- lifecycle

    async def start(self) -> None:
        self.http()

    # -- auth

    def authorization(self) -> str:
        """A fresh Authorization header: new date and salt on every call."""
        date = _iso(self._clock())
        return auth_header(self.options["api_key"], self.options["api_secret"], date, self._salt())

    # -- building messages

    def build_message(
        self, msg: Outgoing, image_id: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """The wire object for `msg` and its path; PermanentError if it cannot go out,
        NotYet if it is an ad outside its hours (it can go at 08:00 KST).

        With a `template`, an informational message goes as AlimTalk and an ad as a brand
        message. A message with a picture becomes an MMS carrying `image_id` (from
        `upload_image`); without one the body lacks ``imageId`` — `send` checks everything
        else first, so a message that cannot go out never costs an upload, then fills it in.
        Permanent checks come before the hours: an unlawful ad dies now, not at 08:00.
        """
        body: dict[str, Any] = {
            "to": to_national_number(msg.recipient),
            "from": self.sender,
            "customFields": {OUR_ID: msg.ref},
        }
        if msg.template:
            if msg.informational:
                return self._alimtalk(msg, body)
            return self._brand_message(msg, body)
        if msg.has_image and not msg.image_path:
            raise PermanentError(
                "SOLAPI는 사진 파일을 올려서 보내요: 사진 주소만으로는 보낼 수 없어요",
                code="no_image_file",
            )
        # A notice to the owner quotes the customer: an emoji there becomes □ rather than
        # cost the owner the notice. A customer is never sent a stand-in (sms_text).
        unshown = UNSHOWN if msg.recipient.owner else None
        try:
            size = size_mms_text if msg.image_path else size_text
            sized = size(msg.text, msg.subject, replace_with=unshown)
        except UnsendableText as exc:
            raise PermanentError(exc.reason, code=exc.code) from None
        if not msg.informational:
            check_ad_marking(sized.text)
            self._check_hours(
                AD_SMS_HOURS,
                "광고 문자는 한국 시간 08:00–21:00에만 보내요 (야간 광고 금지): 08:00에 보낼게요",
            )
        if image_id:
            body["imageId"] = image_id
        body["type"] = sized.kind
        body["text"] = sized.text
        if sized.subject:
            body["subject"] = sized.subject
        return body, sized.kind.lower()

    def _channel(self, product: str) -> str:
        pf_id = self.options["pf_id"]
        if not pf_id:
            raise PermanentError(
                f"{product}에 필요한 카카오 채널 ID(providers.solapi.pf_id)가 설정되지 않았어요",
                code="no_pf_id",
            )
        return str(pf_id)

    def _alimtalk(self, msg: Outgoing, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        if msg.has_image:
            raise PermanentError("알림톡에는 사진을 붙일 수 없어요", code="image_on_alimtalk")
        # No `text`: SOLAPI renders the approved template with the variables (a text that
        # differs from the template would be refused, 3103); fallback SMS on.
        body["type"] = "ATA"
        body["kakaoOptions"] = {
            "pfId": self._channel("알림톡"),
            "templateId": msg.template,
            "variables": {_variable_name(k): str(v) for k, v in msg.variables.items()},
            "disableSms": False,
        }
        return body, "alimtalk"

    def _brand_message(self, msg: Outgoing, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """An ad with a template: a brand message (브랜드 메시지) of the text kind.

        The wire shape follows SOLAPI's own template-based examples — ``kakaoOptions`` with
        ``pfId``, ``templateId``, ``variables`` and ``bms: {targeting}`` (solapi-nodejs
        ``examples/…/kakao/send/send_bms.js``, solapi-python ``examples/simple/
        send_kakao_bms.py``) — and the type ``BMS_TEXT``, which SOLAPI's CLI (solactl,
        ``validateBMS``) accepts with a ``templateId``, the content then coming from the
        template. ``adFlag`` is SOLAPI's ad mark for Kakao messages (kakaoOptions schema of
        solapi-nodejs); a brand message is always an ad, and we say so.

        Pictures are refused: a brand template carries its own, and a free-form image brand
        message needs a ``BMS`` upload (jpg/png ≤ 5 MB, 2:1…3:4), not our MMS pieces.

        The SMS fallback (``disableSms: false``) is an ad SMS/LMS in its own right, so
        `Outgoing.text` is required: sized like any SMS/LMS, held to `check_ad_marking`,
        and sent as the message's ``text``. Which text SOLAPI falls back with is an open
        question (PROTOCOLS.md §7.8) and its SDK examples say brand-message fallback is
        switched off for now; either way, no fallback can go out without the marking.
        """
        if msg.has_image:
            raise PermanentError(
                "브랜드 메시지에는 사진을 따로 붙일 수 없어요 (사진은 템플릿에 등록해 주세요)",
                code="image_on_brand_message",
            )
        pf_id = self._channel("브랜드 메시지")
        if not msg.text.strip():
            raise PermanentError(
                "브랜드 메시지에는 문자 대체발송용 광고 문구(text)가 필요해요",
                code="no_fallback_text",
            )
        try:
            fallback = size_text(msg.text)
        except UnsendableText as exc:
            raise PermanentError(f"대체발송 문자: {exc.reason}", code=exc.code) from None
        check_ad_marking(fallback.text)
        self._check_hours(
            BRAND_MESSAGE_HOURS,
            "카카오 브랜드 메시지는 한국 시간 08:00–20:00에만 보낼 수 있어요: 08:00에 보낼게요",
        )
        body["type"] = "BMS_TEXT"
        body["text"] = fallback.text  # the fallback SMS/LMS; SOLAPI picks SMS or LMS by size
        body["kakaoOptions"] = {
            "pfId": pf_id,
            "templateId": msg.template,
            "variables": {_variable_name(k): str(v) for k, v in msg.variables.items()},
            "disableSms": False,
            "adFlag": True,
            "bms": {"targeting": self.options["brand_targeting"]},
        }
        return body, "brand_message"

    def _check_hours(self, hours: tuple[time, time], reason: str) -> None:
        wait = seconds_outside_hours(self._clock(), hours)
        if wait is not None:
            raise NotYet(reason, retry_after=wait, code="ad_hours")

    # -- sending

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        outcomes: dict[int, SendResult | ProviderError] = {}
        wire: list[tuple[int, str, dict[str, Any]]] = []  # (index, path, message)
        seen: set[str] = set()
        for i, msg in enumerate(batch):
            if msg.ref in seen:
                outcomes[i] = PermanentError("같은 ref가 한 배치에 두 번 있어요", code="dup_ref")
                continue
            seen.add(msg.ref)
            try:
                body, path = self.build_message(msg)
            except ProviderError as exc:  # refused here, or an ad outside its hours
                outcomes[i] = exc
                continue
            wire.append((i, path, body))
        wire = await self._attach_images(batch, wire, outcomes)
        for start in range(0, len(wire), MAX_BATCH):
            chunk = wire[start : start + MAX_BATCH]
            payload = {
                "messages": [m for _, _, m in chunk],
                "showMessageList": True,
                # Two outbox rows for one customer in a batch are legitimate (else 1026).
                "allowDuplicates": True,
            }
            try:
                answer = await self._request("POST", SEND_PATH, json_body=payload)
            except ProviderError as exc:
                for i, _, _ in chunk:
                    outcomes[i] = exc
                continue
            refs = [(i, batch[i].ref, path) for i, path, _ in chunk]
            outcomes.update(self._read_send_answer(answer, refs))
        return [outcomes[i] for i in range(len(batch))]

    async def _attach_images(
        self,
        batch: Sequence[Outgoing],
        wire: list[tuple[int, str, dict[str, Any]]],
        outcomes: dict[int, SendResult | ProviderError],
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Upload the picture of every MMS in `wire` and put its id in the message. An MMS
        whose upload failed is taken out of the returned wire, that failure its outcome."""
        gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

        async def upload(i: int) -> str | ProviderError:
            path = batch[i].image_path
            assert path is not None  # build_message made an MMS only with a file
            async with gate:
                try:
                    return await self.upload_image(path, name=f"mms-{batch[i].ref}.jpg")
                except ProviderError as exc:
                    return exc

        mms = [i for i, path, _ in wire if path == "mms"]
        if not mms:
            return wire
        uploaded = dict(zip(mms, await asyncio.gather(*(upload(i) for i in mms)), strict=True))
        kept: list[tuple[int, str, dict[str, Any]]] = []
        for i, path, body in wire:
            file_id = uploaded.get(i)
            if isinstance(file_id, ProviderError):
                outcomes[i] = file_id
                continue
            if file_id is not None:
                body["imageId"] = file_id
            kept.append((i, path, body))
        return kept

    async def upload_image(self, path: str, *, name: str = "photo.jpg") -> str:
        """Upload a JPEG for MMS; SOLAPI's fileId. PermanentError when the file is not one
        SOLAPI takes (checked here, before any call), else the call's classified error."""
        data = await asyncio.to_thread(read_mms_image, path)
        body = {"file": base64.b64encode(data).decode("ascii"), "type": "MMS", "name": name}
        try:
            answer = await self._request("POST", STORAGE_PATH, json_body=body)
        except UnknownOutcome as exc:
            # Only a file may have arrived, no message: uploading again is safe.
            raise TransientError(f"사진 올리기 실패: {exc.reason}", code=exc.code) from None
        file_id = answer.get("fileId") if isinstance(answer, Mapping) else None
        if not file_id:
            raise TransientError("SOLAPI가 올린 사진의 ID를 알려 주지 않았어요", code="no_file_id")
        return str(file_id)

    def _read_send_answer(
        self, answer: Any, refs: Iterable[tuple[int, str, str]]
    ) -> dict[int, SendResult | ProviderError]:
        if not isinstance(answer, Mapping):
            unknown = UnknownOutcome("SOLAPI의 응답을 읽을 수 없어요", code="bad_answer")
            return {i: unknown for i, _, _ in refs}
        accepted: dict[str, Mapping[str, Any]] = {}
        failed: dict[str, Mapping[str, Any]] = {}
        for key, into in (("messageList", accepted), ("failedMessageList", failed)):
            entries = answer.get(key)
            if isinstance(entries, Mapping):  # some list answers key entries by id
                entries = list(entries.values())
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, Mapping) and (ref := _custom_ref(entry)):
                    into[ref] = entry
        out: dict[int, SendResult | ProviderError] = {}
        for i, ref, path in refs:
            if ref in failed:
                entry = failed[ref]
                code = str(entry.get("statusCode", ""))
                # Only an hours refusal needs the time: when it is morning again.
                now = self._clock() if code in KAKAO_OUTSIDE_HOURS else None
                out[i] = classify_status(code, str(entry.get("statusMessage", "")), now=now)
            elif ref in accepted:
                entry = accepted[ref]
                mid = entry.get("messageId")
                out[i] = SendResult(
                    ref=ref,
                    provider_message_id=str(mid) if mid else None,
                    status="accepted",
                    path=path,
                    detail=str(entry.get("statusMessage", "")),
                )
            else:
                out[i] = UnknownOutcome("SOLAPI 응답에 이 메시지가 없어요", code="missing")
        return out

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One signed call; the decoded JSON of a 200, else the classified error."""
        seconds = float(self.options["timeout"])
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 5.0))
        headers = {"Authorization": self.authorization()}
        try:
            async with self.http().request(
                method,
                self.base_url + path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=timeout,
            ) as resp:
                status = resp.status
                raw = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransientError(f"SOLAPI에 연결할 수 없어요 ({type(exc).__name__})") from None
        except TimeoutError:
            raise UnknownOutcome(f"SOLAPI 응답 시간 초과 ({seconds:g}초)", code="timeout") from None
        except aiohttp.ClientError as exc:
            raise UnknownOutcome(
                f"SOLAPI 연결이 끊겼어요 ({type(exc).__name__})", code="disconnected"
            ) from None
        if status == 200:
            try:
                return json.loads(raw)
            except ValueError:
                raise UnknownOutcome(
                    "SOLAPI가 읽을 수 없는 응답을 보냈어요", code="bad_json"
                ) from None
        code, message = _error_body(raw)
        if status == 429:
            raise RateLimited(
                "SOLAPI 요청 한도 초과",
                retry_after=parse_retry_after(retry_after, self._clock()),
                code=code or "429",
            )
        if status == 403:
            reason = f"SOLAPI 인증 실패: {message or code}"
            if code in RETRYABLE_AUTH:
                raise TransientError(reason, code=code)
            raise SolapiAccountError(reason, code=code or "403")
        if status == 408:
            raise TransientError("SOLAPI 요청 시간 초과", code="408")
        if 400 <= status < 500:
            raise PermanentError(f"SOLAPI가 요청을 거부했어요: {message or code}", code=code)
        raise UnknownOutcome(f"SOLAPI 서버 오류 (HTTP {status})", code=f"http_{status}")

    # -- lookup

    async def lookup(self, ref: SendRef) -> SendResult | None:
        """The message SOLAPI holds for `ref`; None only when SOLAPI was searched in full and
        has none. A failed search (an error, a timeout, more messages in the window than
        `lookup_max_pages` reads) raises: not finding is not "not sent", so ask again later.
        """
        if ref.provider_message_id:
            return await self._lookup_id(ref)
        answer = (await self._scan([ref], deadline=None))[ref.ref]  # no deadline: answered
        if isinstance(answer, ProviderError):
            raise answer
        return answer

    async def lookup_many(
        self, refs: Sequence[SendRef], *, seconds: float
    ) -> dict[str, LookupAnswer]:
        """Many refs for the price of one search: refs with a message id are asked by id (one
        request each), the others answered together by one read of SOLAPI's list over the
        union of their windows — each page once. A ref not found before `seconds` are up
        while the list was still being read is left out (ask again next round)."""
        deadline = asyncio.get_running_loop().time() + seconds
        by_id = [r for r in refs if r.provider_message_id]
        by_window = [r for r in refs if not r.provider_message_id]
        answers, scanned = await asyncio.gather(
            super().lookup_many(by_id, seconds=seconds), self._scan(by_window, deadline)
        )
        return answers | scanned

    async def _lookup_id(self, ref: SendRef) -> SendResult | None:
        assert ref.provider_message_id is not None
        criteria = {"criteria": "messageId", "cond": "eq", "value": ref.provider_message_id}
        for entry in await self._list_page(criteria, None):
            if str(entry.get("messageId")) == ref.provider_message_id:
                return self._found(ref.ref, entry)
        return None

    def _earliest(self, ref: SendRef, now: datetime) -> datetime:
        """The earliest SOLAPI can have created the message: just before the attempt (clock
        skew), or a day back when the attempt time is not known. (It may have been created
        any time up to now, so every window ends `lookup_before` after now.)"""
        if ref.attempted_at is not None:
            return ref.attempted_at - self.lookup_before
        return now - self.lookup_without_attempt

    async def _scan(
        self, refs: Sequence[SendRef], deadline: float | None
    ) -> dict[str, LookupAnswer]:
        """Read the list once over the union of the refs' windows (they all end now).

        A ref is answered when its message turns up; None when the list was read to its end
        without it; the error when the read failed or held more than `lookup_max_pages`.
        When `deadline` (loop time) comes first, the refs not found yet are left out.
        """
        if not refs:
            return {}
        now = self._clock()
        start = min(self._earliest(r, now) for r in refs)
        criteria = {
            "criteria": "dateCreated,dateCreated",
            "cond": "gte,lte",
            "value": f"{_iso(start)},{_iso(now + self.lookup_before)}",
        }
        wanted = {r.ref for r in refs}
        answers: dict[str, LookupAnswer] = {}
        key: str | None = None
        try:
            for _ in range(self.lookup_max_pages):
                async with asyncio.timeout_at(deadline):
                    page, key = await self._list(criteria, key)
                for entry in page:
                    ours = _custom_ref(entry)
                    if ours not in wanted or ours in answers:
                        continue
                    # Refused at intake (None): a later entry may be the resend.
                    if (found := self._found(ours, entry)) is not None:
                        answers[ours] = found
                if not key:
                    return answers | dict.fromkeys(wanted - answers.keys())
        except TimeoutError:
            return answers  # out of time: what was found stands, the rest next round
        except ProviderError as exc:
            return answers | dict.fromkeys(wanted - answers.keys(), exc)
        too_full = TransientError(
            f"SOLAPI 목록에 메시지가 너무 많아 {self.lookup_max_pages}쪽 안에서 찾지 못했어요",
            code="lookup_window",
        )
        return answers | dict.fromkeys(wanted - answers.keys(), too_full)

    async def _list_page(
        self, criteria: Mapping[str, str], key: str | None
    ) -> list[Mapping[str, Any]]:
        return (await self._list(criteria, key))[0]

    async def _list(
        self, criteria: Mapping[str, str], key: str | None
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        params = {**criteria, "limit": str(self.lookup_page_size)}
        if key:
            params["startKey"] = key
        answer = await self._request("GET", LIST_PATH, params=params)
        if not isinstance(answer, Mapping):
            raise UnknownOutcome("SOLAPI 목록 응답을 읽을 수 없어요", code="bad_answer")
        entries = answer.get("messageList") or []
        if isinstance(entries, Mapping):
            entries = list(entries.values())
        page = [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []
        next_key = answer.get("nextKey")
        return page, str(next_key) if next_key else None

    def _found(self, ref: str, entry: Mapping[str, Any]) -> SendResult | None:
        code = str(entry.get("statusCode", ""))
        if code.startswith("1"):  # refused at intake: nothing went out, a resend is safe
            return None
        mid = entry.get("messageId") or entry.get("_id")
        kind = entry.get("type")
        return SendResult(
            ref=ref,
            provider_message_id=str(mid) if mid else None,
            status="delivered" if code == "4000" else "accepted",
            path=path_for_type(str(kind) if kind else None),
            detail=str(entry.get("statusMessage") or ""),
        )


def _error_body(raw: bytes) -> tuple[str | None, str]:
    try:
        data = json.loads(raw)
    except ValueError:
        return None, ""
    if not isinstance(data, Mapping):
        return None, ""
    code = data.get("errorCode")
    return (str(code) if code else None), str(data.get("errorMessage") or "")
