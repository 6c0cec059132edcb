"""`SolapiProvider`: what goes out — SMS/LMS/MMS, AlimTalk and Kakao brand messages.

The facts about SOLAPI (limits, capabilities, options) are its class attributes; the
signed call is `providers.solapi.client`, reconciling `providers.solapi.lookup`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import time
from typing import Any, ClassVar

from providers.base import (
    Capability,
    NotYet,
    Option,
    Outgoing,
    PermanentError,
    ProviderError,
    SendResult,
    TransientError,
    UnknownOutcome,
)
from providers.sms_text import UNSHOWN, UnsendableText, size_mms_text, size_text
from providers.solapi.client import DEFAULT_BASE_URL
from providers.solapi.codes import KAKAO_OUTSIDE_HOURS, classify_status
from providers.solapi.hours import BRAND_MESSAGE_HOURS, seconds_outside_hours
from providers.solapi.images import read_mms_image
from providers.solapi.lookup import SolapiLookup
from providers.solapi.wire import (
    OUR_ID,
    SEND_PATH,
    STORAGE_PATH,
    custom_ref,
    to_national_number,
    variable_name,
)

log = logging.getLogger("dangol.providers.solapi")

MAX_BATCH = 10_000
UPLOADS_AT_ONCE = 4

# Brand-message targeting (§2.1): I = channel friends; M/N reach non-friends with marketing
# consent and need Kakao's approval (channels with ≥ 50 000 friends), so "I" is the default.
BRAND_TARGETING = ("I", "M", "N")


class SolapiProvider(SolapiLookup):
    name = "solapi"
    capabilities = Capability.INITIATE | Capability.IMAGES | Capability.DELIVERY_REPORTS
    max_text_chars = 2000  # a first cut; the real limit is 2000 CP949 bytes (sms_text)
    rate_per_second = None
    max_batch = MAX_BATCH
    # MMS pictures (PROTOCOLS.md §2.3, 2026 table): jpg, 200 KB — read the strict way, 200 000
    # bytes, so a file that passes here passes whichever "KB" SOLAPI means — ≤ 1500 × 1440 px.
    image_max_bytes: ClassVar[int] = 200_000
    image_max_size: ClassVar[tuple[int, int]] = (1500, 1440)
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

    # -- building messages

    def build_message(
        self, msg: Outgoing, image_id: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """The wire object for `msg` and its path; PermanentError if it cannot go out,
        NotYet if it is a brand message outside Kakao's hours (it can go at 08:00 KST).

        With a `template`, an informational message goes as AlimTalk and an ad as a brand
        message. A message with a picture becomes an MMS carrying `image_id` (from
        `upload_image`); without one the body lacks ``imageId`` — `send` checks everything
        else first, so a message that cannot go out never costs an upload, then fills it in.
        Permanent checks come before the hours: a brand message that cannot go dies now.
        The law's rules for ads (marking, night ban, consent) are the send-time policy's,
        checked before the row reaches any adapter.
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
            "variables": {variable_name(k): str(v) for k, v in msg.variables.items()},
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
        `Outgoing.text` is required: sized like any SMS/LMS and sent as the message's
        ``text`` — the row's own text, which the send-time policy has already checked for
        the ``(광고)`` and opt-out marking. Which text SOLAPI falls back with is an open
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
        self._check_hours(
            BRAND_MESSAGE_HOURS,
            "카카오 브랜드 메시지는 한국 시간 08:00–20:00에만 보낼 수 있어요: 08:00에 보낼게요",
        )
        body["type"] = "BMS_TEXT"
        body["text"] = fallback.text  # the fallback SMS/LMS; SOLAPI picks SMS or LMS by size
        body["kakaoOptions"] = {
            "pfId": pf_id,
            "templateId": msg.template,
            "variables": {variable_name(k): str(v) for k, v in msg.variables.items()},
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
            except ProviderError as exc:  # refused here, or a brand message outside its hours
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
        data = await asyncio.to_thread(
            read_mms_image, path, self.image_max_bytes, self.image_max_size
        )
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
                if isinstance(entry, Mapping) and (ref := custom_ref(entry)):
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
