"""A fake SOLAPI: checks the HMAC header, records accepted messages, fails on cue.

    fake = FakeSolapi(now=lambda: FIXED)
    server = await aiohttp_server(fake.app)
    fake.fail_recipient("01000000000", "1062", "발신번호 미등록")
    fake.fail_next("hang_after_record")     # records, then never answers
    fake.fail_upload_next("503")            # the next image upload fails

Failure modes (`fail_next`): hang_before_read, hang_after_record, reset, 429, 500, 503,
bad_json. `list_failure` ("429", "500", "503", "hang" or None) makes every message-list
request (the adapter's lookup) fail that way while it is set. `record=True` makes 500/503 record the messages first. Hangs end when the
client gives up or `release()` is called (the fixture does, so shutdown never waits).

Image storage (`POST /storage/v1/files`): checks auth like the other endpoints, decodes
the base64 file and holds it to SOLAPI's MMS limits (jpg, ≤ 200 KB, ≤ 1500×1440; decoded
with Pillow, as a vendor would), answers a `fileId` and keeps the file in `files`. An MMS
whose `imageId` it does not hold is refused. Upload failure modes (`fail_upload_next`):
400, 500, 503, hang. Error codes the sources do not name are made up here (marked).

Brand messages (브랜드 메시지): only the template-based text kind, ``BMS_TEXT`` with a
``templateId`` — the one the adapter sends. Checked as `_validate_brand_message` says:
channel, template, variables, targeting (only those in `brand_targeting`, the targetings
this account's channel is approved for: "I" unless a test says otherwise), Kakao's hours
08:00–20:00 KST by `now` (3108, refused at intake here; the real SOLAPI may report it
later), and the SMS fallback text when fallback is on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import hmac
import io
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from PIL import Image

from providers.solapi import parse_auth_header

SKEW = timedelta(minutes=15)
KST = timezone(timedelta(hours=9))
# The vendor's "200 KB" is most likely 200 × 1024; the adapter checks the stricter 200 000.
MMS_FILE_MAX_BYTES = 200 * 1024
MMS_FILE_MAX_SIZE = (1500, 1440)


@dataclass
class Failure:
    mode: str
    retry_after: str = "3"
    record: bool = False


@dataclass
class FakeSolapi:
    api_key: str = "NCSFAKEKEY"
    api_secret: str = "fake-secret"
    senders: tuple[str, ...] = ("0212345678",)
    brand_targeting: tuple[str, ...] = ("I",)  # M/N need Kakao's approval of the channel
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # accepted, by id
    requests: list[dict[str, Any]] = field(default_factory=list)  # every authorised send
    auth_failures: list[str] = field(default_factory=list)
    signatures: set[str] = field(default_factory=set)
    salts: list[str] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # uploaded, by fileId
    uploads: int = 0  # authorised upload requests, refused ones included
    list_failure: str | None = None  # while set, every list request fails this way
    lists: int = 0  # list requests, failed ones included

    def __post_init__(self) -> None:
        self._failures: collections.deque[Failure] = collections.deque()
        self._upload_failures: collections.deque[str] = collections.deque()
        self._recipient_codes: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1)
        self._release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/messages/v4/send-many/detail", self._send)
        self.app.router.add_get("/messages/v4/list", self._list)
        self.app.router.add_post("/storage/v1/files", self._upload)

    # -- the script

    def fail_next(
        self, mode: str, *, times: int = 1, retry_after: str = "3", record: bool = False
    ) -> None:
        self._failures.extend(Failure(mode, retry_after, record) for _ in range(times))

    def fail_upload_next(self, mode: str, *, times: int = 1) -> None:
        if mode not in ("400", "500", "503", "hang"):
            raise ValueError(f"unknown upload failure {mode!r}")
        self._upload_failures.extend([mode] * times)

    def mms(self) -> list[dict[str, Any]]:
        """Every accepted MMS, in order."""
        return [m for m in self.messages.values() if m.get("type") == "MMS"]

    def brand_messages(self) -> list[dict[str, Any]]:
        """Every accepted brand message, in order."""
        return [m for m in self.messages.values() if str(m.get("type", "")).startswith("BMS_")]

    def fail_recipient(self, to: str, code: str, message: str) -> None:
        self._recipient_codes[to] = (code, message)

    def release(self) -> None:
        self._release.set()

    def refs(self) -> list[str]:
        """ourId of every accepted message, in order (duplicates show twice)."""
        return [m["customFields"].get("ourId") for m in self.messages.values()]

    # -- auth

    def _check_auth(self, request: web.Request) -> web.Response | None:
        fields = parse_auth_header(request.headers.get("Authorization", ""))
        problem = None
        if not fields or not {"apikey", "date", "salt", "signature"} <= fields.keys():
            problem = "InvalidAuthorizationHeader"
        elif fields["apikey"] != self.api_key:
            problem = "InvalidAPIKey"
        else:
            try:
                date = datetime.fromisoformat(fields["date"].replace("Z", "+00:00"))
            except ValueError:
                date = None
            expected = hmac.new(
                self.api_secret.encode(), (fields["date"] + fields["salt"]).encode(), hashlib.sha256
            ).hexdigest()
            if date is None or date.tzinfo is None or abs(date - self.now()) > SKEW:
                problem = "RequestTimeTooSkewed"
            elif not hmac.compare_digest(expected, fields["signature"]):
                problem = "SignatureDoesNotMatch"
            elif fields["signature"] in self.signatures:
                problem = "DuplicatedSignature"
            else:
                self.signatures.add(fields["signature"])
                self.salts.append(fields["salt"])
        if problem is None:
            return None
        self.auth_failures.append(problem)
        return web.json_response({"errorCode": problem, "errorMessage": problem}, status=403)

    # -- endpoints

    async def _send(self, request: web.Request) -> web.StreamResponse:
        failure = self._failures.popleft() if self._failures else None
        if failure and failure.mode == "hang_before_read":
            await self._hang()
            return web.json_response({"errorCode": "Late"}, status=504)
        if failure and failure.mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            await self._hang()
            return web.Response()
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body = await request.json()
        self.requests.append(body)
        if failure and failure.mode == "429":
            return web.json_response(
                {"errorCode": "TooManyRequests", "errorMessage": "slow down"},
                status=429,
                headers={"Retry-After": failure.retry_after},
            )
        if failure and failure.mode in ("500", "503") and not failure.record:
            return web.json_response({"errorCode": "UnknownError"}, status=int(failure.mode))
        answer = self._accept(body)
        if failure and failure.mode in ("500", "503"):
            return web.json_response({"errorCode": "UnknownError"}, status=int(failure.mode))
        if failure and failure.mode == "hang_after_record":
            await self._hang()
        if failure and failure.mode == "bad_json":
            return web.Response(text='{"groupInfo": {', content_type="application/json")
        return web.json_response(answer)

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        failure = self._upload_failures.popleft() if self._upload_failures else None
        if failure == "hang":
            await self._hang()
            return web.json_response({"errorCode": "Late"}, status=504)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body = await request.json()
        self.uploads += 1
        if failure in ("500", "503"):
            return web.json_response({"errorCode": "UnknownError"}, status=int(failure))
        if failure == "400":
            return _refused("ValidationError", "잘못된 요청")
        if body.get("type") != "MMS":  # the only type this fake knows
            return _refused("ValidationError", "type은 MMS만 지원합니다")
        try:
            data = base64.b64decode(str(body.get("file", "")), validate=True)
        except (binascii.Error, ValueError):
            return _refused("ValidationError", "file은 base64여야 합니다")
        if not data:
            return _refused("ValidationError", "file이 비어 있습니다")
        if len(data) > MMS_FILE_MAX_BYTES:  # made-up code: the sources name none
            return _refused("FileSizeExceeded", "MMS 이미지는 200KB 이하만 가능합니다")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
                    kind, (width, height) = image.format, image.size
        except Exception:  # whatever Pillow makes of a bad file: not a JPEG we take
            kind, width, height = None, 0, 0
        if kind != "JPEG":
            return _refused("InvalidFileFormat", "MMS 이미지는 JPG만 가능합니다")
        if width > MMS_FILE_MAX_SIZE[0] or height > MMS_FILE_MAX_SIZE[1]:
            return _refused("InvalidImageSize", "MMS 이미지는 1500×1440 이하만 가능합니다")
        now = self.now()
        file_id = f"ST01FZ{now:%y%m%d%H%M%S}{next(self._ids):014d}"
        record = {
            "fileId": file_id,
            "type": "MMS",
            "name": body.get("name"),
            "originalName": body.get("name"),
            "width": width,
            "height": height,
            "fileSize": len(data),
            "dateCreated": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "url": f"https://storage.example/{file_id}",
        }
        self.files[file_id] = record | {"data": data}
        return web.json_response(record)

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), 10)

    def _accept(self, body: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        group = f"G4V{now:%Y%m%d%H%M%S}{next(self._ids):015d}"
        accepted: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        seen_to: set[str] = set()
        for msg in body.get("messages", []):
            code, text = self._validate(msg, seen_to, body.get("allowDuplicates", False))
            mid = f"M4V{now:%Y%m%d%H%M%S}{next(self._ids):015d}"
            base = {"messageId": mid, "customFields": msg.get("customFields", {})}
            if code != "2000":
                failed.append(
                    base | {"to": msg.get("to"), "from": msg.get("from"), "type": msg.get("type"),
                            "country": "82", "statusCode": code, "statusMessage": text,
                            "accountId": "12345678"}
                )  # fmt: skip
                continue
            record = msg | base | {
                "groupId": group, "statusCode": "2000", "statusMessage": "정상 접수",
                "dateCreated": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }  # fmt: skip
            self.messages[mid] = record
            accepted.append(base | {"statusCode": "2000", "statusMessage": "정상 접수"})
        count = {"total": len(accepted) + len(failed), "registeredFailed": len(failed),
                 "registeredSuccess": len(accepted)}  # fmt: skip
        return {
            "failedMessageList": failed,
            "groupInfo": {"groupId": group, "status": "SENDING", "count": count},
            "messageList": accepted,
        }

    def _validate(self, msg: dict[str, Any], seen_to: set[str], dupes: bool) -> tuple[str, str]:
        to = str(msg.get("to", ""))
        if to in self._recipient_codes:
            return self._recipient_codes[to]
        if not to.isdigit():
            return "1010", "수신번호 형식 오류"
        if msg.get("from") not in self.senders:
            return "1062", "발신번호 미등록"
        if to in seen_to and not dupes:
            return "1026", "중복 수신번호"
        seen_to.add(to)
        kind = msg.get("type")
        if str(kind).startswith("BMS_"):
            return self._validate_brand_message(msg)
        if kind == "ATA":
            opts = msg.get("kakaoOptions") or {}
            if not opts.get("pfId") or not opts.get("templateId"):
                return "1041", "알림톡 옵션 누락"
            return "2000", ""
        text = str(msg.get("text", ""))
        try:
            size = len(text.encode("cp949"))
            subject_size = len(str(msg.get("subject", "")).encode("cp949"))
        except UnicodeEncodeError:
            return "1029", "지원하지 않는 문자"
        if kind == "SMS" and (size > 90 or "subject" in msg):
            return "1013" if "subject" in msg else "1011", "SMS 길이/제목 오류"
        if kind == "LMS" and (size > 2000 or subject_size > 40):
            return "1011", "LMS 길이 초과"
        if kind == "MMS":
            if size > 2000 or subject_size > 40:
                return "1011", "MMS 길이 초과"
            image = self.files.get(str(msg.get("imageId", "")))
            if image is None or image["type"] != "MMS":  # made-up code
                return "1052", "이미지 파일을 찾을 수 없음"
        elif "imageId" in msg:
            return "1052", "MMS가 아닌 메시지에 이미지"
        return "2000", ""

    def _validate_brand_message(self, msg: dict[str, Any]) -> tuple[str, str]:
        """A template-based text brand message, as SOLAPI would take or refuse it.

        Codes: 1010 (required value missing), 1011 (format), 1025 (message type), 1029
        (characters outside EUC-KR), 1031 (length), 3108 (outside 08–20) are SOLAPI's own
        (PROTOCOLS.md §2.3). 1083 for targeting is borrowed from SOLAPI's CLI (solactl,
        ``validateBMS``), not from the status-code list; refusing an unapproved M/N at
        intake, and wanting an explicit fallback `text`, are this fake's own rules.
        """
        if msg.get("type") != "BMS_TEXT":  # the other kinds carry structures we never send
            return "1025", "이 가짜 SOLAPI는 템플릿 브랜드 메시지(BMS_TEXT)만 받습니다"
        if "imageId" in msg:
            return "1052", "텍스트 브랜드 메시지에 이미지"  # as for SMS/LMS above
        opts = msg.get("kakaoOptions")
        if not isinstance(opts, dict) or not opts.get("pfId"):
            return "1010", "브랜드 메시지는 kakaoOptions.pfId가 필수입니다"
        if not opts.get("templateId"):
            return "1010", "브랜드 메시지는 kakaoOptions.templateId가 필수입니다"
        variables = opts.get("variables", {})
        if not isinstance(variables, dict) or not all(
            isinstance(k, str) and k.startswith("#{") and k.endswith("}") and isinstance(v, str)
            for k, v in variables.items()
        ):
            return "1011", 'variables는 {"#{이름}": "문자열"} 형식이어야 합니다'
        bms = opts.get("bms")
        targeting = bms.get("targeting") if isinstance(bms, dict) else None
        if targeting not in ("I", "M", "N"):
            return "1083", f"targeting 값이 올바르지 않습니다: {targeting!r} (허용: I, M, N)"
        if targeting not in self.brand_targeting:  # made-up: the sources name no code
            return "1083", f"타겟팅 {targeting}은 카카오의 인허가를 받은 채널만 쓸 수 있습니다"
        if not opts.get("disableSms", False):  # fallback on (SOLAPI's default)
            text = msg.get("text")
            if not isinstance(text, str) or not text.strip():
                return "1010", "대체발송 문자 내용(text)이 없습니다"
            try:
                size = len(text.encode("cp949"))
            except UnicodeEncodeError:
                return "1029", "지원하지 않는 문자"
            if size > 2000:
                return "1031", "대체발송 문자는 2000byte까지 가능합니다"
        if not 8 <= self.now().astimezone(KST).hour < 20:
            return "3108", "메시지 발송 가능 시간이 아님(오전 8시 ~ 오후 8시 가능)"
        return "2000", ""

    async def _list(self, request: web.Request) -> web.Response:
        self.lists += 1
        if self.list_failure == "hang":
            await self._hang()
            return web.json_response({"errorCode": "Late"}, status=504)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        if self.list_failure in ("429", "500", "503"):
            code = "TooManyRequests" if self.list_failure == "429" else "UnknownError"
            return web.json_response({"errorCode": code}, status=int(self.list_failure))
        q = request.query
        conds = list(zip(q.get("criteria", "").split(","), q.get("cond", "").split(","),
                         q.get("value", "").split(","), strict=False))  # fmt: skip
        rows = [m for m in self.messages.values() if all(self._match(m, *c) for c in conds if c[0])]
        start = 0
        if q.get("startKey"):
            ids = [m["messageId"] for m in rows]
            start = ids.index(q["startKey"]) if q["startKey"] in ids else len(rows)
        limit = int(q.get("limit", "20"))
        page = rows[start : start + limit]
        more = rows[start + limit : start + limit + 1]
        return web.json_response(
            {
                "startKey": q.get("startKey"),
                "nextKey": more[0]["messageId"] if more else None,
                "limit": limit,
                "messageList": {m["messageId"]: m for m in page},
            }
        )

    @staticmethod
    def _match(message: dict[str, Any], criterion: str, cond: str, value: str) -> bool:
        have = message.get(criterion)
        if criterion == "dateCreated":
            left = datetime.fromisoformat(str(have).replace("Z", "+00:00"))
            right = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
            ops: dict[str, Callable[[datetime, datetime], bool]] = {
                "eq": lambda a, b: a == b, "gte": lambda a, b: a >= b, "lte": lambda a, b: a <= b,
                "gt": lambda a, b: a > b, "lt": lambda a, b: a < b,
            }  # fmt: skip
            return ops[cond](left, right)
        if cond == "eq":
            return str(have) == value
        if cond == "ne":
            return str(have) != value
        return False


def _refused(code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "errorMessage": message}, status=400)
