"""A fake SOLAPI: checks the HMAC header, records accepted messages, fails on cue.

    fake = FakeSolapi(now=lambda: FIXED)
    server = await aiohttp_server(fake.app)
    fake.fail_recipient("01000000000", "1062", "발신번호 미등록")
    fake.fail_next("hang_after_record")     # records, then never answers

Failure modes (`fail_next`): hang_before_read, hang_after_record, reset, 429, 500, 503,
bad_json. `record=True` makes 500/503 record the messages first. Hangs end when the
client gives up or `release()` is called (the fixture does, so shutdown never waits).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from providers.solapi import parse_auth_header

SKEW = timedelta(minutes=15)


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
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # accepted, by id
    requests: list[dict[str, Any]] = field(default_factory=list)  # every authorised send
    auth_failures: list[str] = field(default_factory=list)
    signatures: set[str] = field(default_factory=set)
    salts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._failures: collections.deque[Failure] = collections.deque()
        self._recipient_codes: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1)
        self._release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/messages/v4/send-many/detail", self._send)
        self.app.router.add_get("/messages/v4/list", self._list)

    # -- the script

    def fail_next(
        self, mode: str, *, times: int = 1, retry_after: str = "3", record: bool = False
    ) -> None:
        self._failures.extend(Failure(mode, retry_after, record) for _ in range(times))

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
        return "2000", ""

    async def _list(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
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
