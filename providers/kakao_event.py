"""Kakao i Open Builder Event API (PROTOCOLS.md §1.7): the bot speaks first in the chat room.

``POST {base_url}/v2/bots/{bot_id}/talk`` with ``Authorization: KakaoAK {REST API key}`` and

    {"event": {"name": <event_name>, "data": {"text": …}},
     "user": [{"type": "botUserKey" | "plusfriendUserKey" | "appUserId", "id": …}, …],
     "params": {}}

The Event block in the admin center whose event name equals ``event_name`` prints
``event.data.text``. Messages of one `send()` with the same text share a request (≤ 100
users, never the same user twice in one request); others go one request each. The answer
``{"taskId", "status": "SUCCESS" | "FAIL", "message", "timestamp"}`` says *accepted*, not
delivered: per-user results come later from ``GET {base_url}/v1/tasks/{taskId}`` (`lookup`).

Every answer is mapped here, once:

    200 SUCCESS                       → SendResult("accepted", taskId, path "event_api")
    200/4xx FAIL, key / bot / event / wallet trouble
                                      → KakaoEventAccountError (an operator must fix it)
    200/4xx FAIL, anything else       → PermanentError; a shared request is first split
                                        into one request per user, so one bad key cannot
                                        take the other messages down with it
    401 / 403                         → KakaoEventAccountError, code "auth"
    429                               → RateLimited(retry_after = Retry-After)
    408, 500, 502, 503 …              → TransientError (Kakao's API answers an accepted
                                        talk with a taskId; an error page means none was made)
    504                               → UnknownOutcome (a gateway gave up waiting for a
                                        server that may have taken the talk)
    connection refused / connect timeout (nothing left)
                                      → TransientError
    timeout / reset after the request left, an unreadable 200
                                      → UnknownOutcome (reconcile, never blind-resend)

The task result's JSON shape is not in PROTOCOLS; we assume what public clients show —

    {"taskId": "…", "status": "ALL SUCCESS" | "PARTIAL SUCCESS" | "ALL FAIL" | "PENDING" …,
     "allRequestCount": 3, "successCount": 2,
     "fail": {"count": 1, "list": [{"type": "botUserKey", "id": "…", "reason": "…"}]}}

— and read it tolerantly in `read_task` alone: counts may be strings or missing, the failed
user's id may sit under ``id``/``userId``/``userID``/``user.id``, its reason under
``reason``/``errorMsg``/``message``/``error``. Anything we cannot read means "cannot tell".

Rate: Kakao publishes no limit for the Event API. `rate_per_second` (5 requests a second
per REST API key, a request carrying up to 100 users) is our conservative assumption.

User keys are personal data: logs show them through `mask_key` only, never bodies.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote

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
    RateLimited,
    SendRef,
    SendResult,
    TokenBucket,
    TransientError,
    UnknownOutcome,
    mask_key,
    parse_retry_after,
)

log = logging.getLogger("dangol.providers.kakao_event")

DEFAULT_BASE_URL = "https://bot-api.kakao.com"
MAX_USERS = 100  # per request (PROTOCOLS §1.7)
MAX_TEXT_CHARS = 1000  # what a simpleText shows; the Event block prints the text in one
KEY_TYPES = frozenset({"botUserKey", "plusfriendUserKey", "appUserId"})
DEFAULT_KEY_TYPE = "botUserKey"
PATH = "event_api"
# The development channel's bot id ends in "!" (observed in public notes).
_BOT_ID = re.compile(r"^[0-9A-Za-z_-]+!?$")
# Long runs that look like user keys or task ids: vendor messages may echo them.
_KEY_LIKE = re.compile(r"[0-9A-Za-z_\-]{20,}")
_REMEMBERED_MAX = 20_000  # (taskId, ref) → user, for lookups by this process

User = tuple[str, str]  # (key type, key)


class KakaoEventAccountError(PermanentError):
    """Our Kakao setup is wrong (REST API key, bot id, event name, wallet): fix, then requeue."""


# --------------------------------------------------------------------------- wire format


def talk_body(event_name: str, text: str, users: Iterable[User]) -> dict[str, Any]:
    """The JSON body of one talk request (fixtures/kakao/event-api-request.json)."""
    return {
        "event": {"name": event_name, "data": {"text": text}},
        "user": [{"type": kind, "id": key} for kind, key in users],
        "params": {},
    }


def mask_keys_in(text: str) -> str:
    """Vendor text with key-like runs masked (they may echo a user key)."""
    return _KEY_LIKE.sub(lambda m: mask_key(m.group()), text)


def classify_fail(message: str, *, http_status: int = 200) -> PermanentError:
    """The error for a FAIL answer to a talk request, by its (undocumented) message.

    Key, bot, event and wallet problems are the operator's to fix and hit every message
    alike (KakaoEventAccountError); anything else is about this request.
    """
    shown = mask_keys_in(message.strip())[:200]
    low = message.lower()
    suffix = f" ({shown})" if shown else ""
    account: tuple[str, str] | None = None
    if any(w in low for w in ("api key", "apikey", "app key", "appkey", "kakaoak", "auth")):
        account = ("auth", "카카오 REST API 키를 확인하세요 (providers.kakao_event.rest_api_key)")
    elif "user" in low:
        return PermanentError(f"카카오가 받는 사람을 거절했어요{suffix}", code="bad_user")
    elif "bot" in low:
        account = ("bot_id", "카카오 봇 ID를 확인하세요 (providers.kakao_event.bot_id)")
    elif "event" in low:
        account = (
            "event_name",
            "관리자센터 Event 블록의 이벤트 이름과 providers.kakao_event.event_name이 같은지, "
            "블록과 봇이 배포됐는지 확인하세요",
        )
    elif any(w in low for w in ("wallet", "월렛", "balance", "billing", "payment")):
        account = ("wallet", "카카오 비즈니스 월렛 연결과 잔액을 확인하세요")
    elif any(w in low for w in ("channel", "deploy", "permission", "forbidden")):
        account = ("setup", "챗봇-채널 연결, 배포, 이벤트 API 사용 권한을 확인하세요")
    if account is not None:
        code, reason = account
        return KakaoEventAccountError(reason + suffix, code=code)
    text = shown or f"HTTP {http_status}"
    return PermanentError(f"카카오가 이벤트 발송을 거절했어요: {text}", code="fail")


def _json_object(raw: bytes | str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def error_for(status: int, headers: Mapping[str, str], raw: bytes, now: datetime) -> ProviderError:
    """Map a talk answer that is not a 2xx to the error family."""
    data = _json_object(raw) or {}
    message = str(data.get("message") or data.get("msg") or "")
    if status == 429:
        retry = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return RateLimited(
            "카카오 이벤트 API 요청 한도 초과",
            retry_after=parse_retry_after(retry, now),
            code="429",
        )
    if status in (401, 403):
        return KakaoEventAccountError(
            "카카오 인증 실패: REST API 키를 확인하세요 (providers.kakao_event.rest_api_key)"
            + (f" ({mask_keys_in(message)[:200]})" if message else ""),
            code="auth",
        )
    if status == 408:
        return TransientError("카카오 이벤트 API 요청 시간 초과", code="408")
    if status == 504:
        return UnknownOutcome("카카오 게이트웨이 시간 초과 (HTTP 504)", code="504")
    if status >= 500:
        return TransientError(f"카카오 서버 오류 (HTTP {status})", code=str(status))
    if status == 404 and not message:
        return KakaoEventAccountError(
            "카카오 봇 API 주소나 봇 ID를 확인하세요 (providers.kakao_event.base_url / bot_id)",
            code="not_found",
        )
    if 400 <= status < 500:
        return classify_fail(message, http_status=status)
    return UnknownOutcome(f"카카오의 예상 밖 응답 HTTP {status}", code=str(status))


def read_talk_answer(raw: bytes | str) -> str | None:
    """The taskId of a 2xx talk answer (None: accepted without one), or the error raised.

    SUCCESS means accepted: without a taskId it cannot be looked up, but sending it again
    would talk twice, so it still counts as accepted.
    """
    data = _json_object(raw)
    if data is None:
        raise UnknownOutcome("카카오가 알아볼 수 없는 응답을 보냈어요", code="bad_json")
    answer = str(data.get("status") or "").upper()
    if answer == "SUCCESS":
        task_id = data.get("taskId")
        return str(task_id) if task_id not in (None, "") else None
    if answer == "FAIL":
        raise classify_fail(str(data.get("message") or ""))
    raise UnknownOutcome(
        f"카카오의 예상 밖 응답이에요 (status={answer[:30] or '-'})", code="bad_answer"
    )


# --------------------------------------------------------------------------- task results


@dataclass(frozen=True)
class TaskResult:
    """What `read_task` could make of ``GET /v1/tasks/{taskId}``."""

    status: str  # upper case, blanks and dashes as "_": ALL_SUCCESS, PENDING …
    total: int | None
    succeeded: int | None
    failed_count: int | None
    failed: Mapping[str, str] = field(default_factory=dict)  # user key → reason

    @property
    def finished(self) -> bool:
        if self.status in _RUNNING:
            return False
        total, ok, failed = self.total, self.succeeded, self.failed_count
        if total is not None and ok is not None and failed is not None:
            return ok + failed >= total
        return self.status in _FINISHED

    @property
    def all_succeeded(self) -> bool:
        if self.total is not None and self.succeeded is not None:
            return self.total > 0 and self.succeeded >= self.total
        return self.status == "ALL_SUCCESS"

    @property
    def all_failed(self) -> bool:
        if self.total is not None and self.failed_count is not None:
            return self.total > 0 and self.failed_count >= self.total and not self.succeeded
        return self.status in ("ALL_FAIL", "FAIL", "FAILED")

    @property
    def failed_list_complete(self) -> bool:
        return self.failed_count is not None and len(self.failed) >= self.failed_count


_RUNNING = frozenset(
    {"PENDING", "READY", "WAITING", "QUEUED", "RUNNING", "PROCESSING", "IN_PROGRESS", "SENDING"}
)
_FINISHED = frozenset(
    {"ALL_SUCCESS", "PARTIAL_SUCCESS", "ALL_FAIL", "FAIL", "FAILED", "COMPLETE", "COMPLETED",
     "DONE", "FINISHED"}
)  # fmt: skip
_ID_KEYS = ("id", "userId", "userID", "user_id", "userKey", "botUserKey", "key")
_REASON_KEYS = ("reason", "errorMsg", "errorMessage", "message", "error", "code", "status")


def read_task(data: Any) -> TaskResult | None:
    """The task result in our words, or None when it is not one we can read.

    The assumed shape is in the module docstring; this is the only place that knows it.
    """
    if not isinstance(data, Mapping):
        return None

    def count(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return None

    def text_of(entry: Mapping[str, Any], keys: Sequence[str]) -> str:
        return next((str(entry[k]) for k in keys if entry.get(k) not in (None, "")), "")

    status = re.sub(r"[\s-]+", "_", str(data.get("status") or "").strip()).upper()
    fail = data.get("fail")
    fail = fail if isinstance(fail, Mapping) else {}
    entries = fail.get("list") if "list" in fail else data.get("failList")
    failed: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, str):
            failed[entry] = ""
            continue
        if not isinstance(entry, Mapping):
            continue
        user = entry.get("user")
        key = text_of(user, _ID_KEYS) if isinstance(user, Mapping) else text_of(entry, _ID_KEYS)
        if key:
            failed[key] = text_of(entry, _REASON_KEYS)
    total = count(data.get("allRequestCount", data.get("totalCount")))
    succeeded = count(data.get("successCount"))
    # No guessing "failed = total - succeeded": a running task has not failed anyone yet.
    failed_count = count(fail.get("count", data.get("failCount")))
    if not status and total is None and succeeded is None and not failed:
        return None
    return TaskResult(status, total, succeeded, failed_count, failed)


def failure_for_user(reason: str) -> PermanentError:
    """A user's failure in a task result, in words for the owner."""
    low = reason.lower()
    shown = mask_keys_in(reason.strip())[:200]
    suffix = f" ({shown})" if shown else ""
    if "friend" in low or "친구" in low:
        return PermanentError("채널을 친구 추가하지 않은 고객이에요" + suffix, code="not_friend")
    if "block" in low or "차단" in low:
        return PermanentError("채널을 차단한 고객이에요" + suffix, code="blocked")
    if "skill" in low or "스킬" in low:
        return PermanentError("이벤트 블록의 스킬 호출이 실패했어요" + suffix, code="skill_error")
    if any(w in low for w in ("key", "user", "invalid", "not found", "키")):
        return PermanentError("카카오 사용자 키가 맞지 않아요" + suffix, code="bad_user_key")
    return PermanentError("카카오 채널로 전달하지 못했어요" + suffix, code="undelivered")


# --------------------------------------------------------------------------- the adapter


class KakaoEventProvider(Provider):
    name = "kakao_event"
    capabilities = (
        Capability.INITIATE
        | Capability.INFO_ONLY
        | Capability.DELIVERY_REPORTS
        | Capability.DELIVERY_BY_LOOKUP
    )
    max_text_chars = MAX_TEXT_CHARS
    rate_per_second = 5.0  # requests per second per REST API key: our assumption, see above
    # Distinct texts go one request each: 50 of them take ~10 s at the assumed rate, well
    # inside the outbox's per-call budget (a quarter of its lease).
    max_batch = 50
    options_spec: ClassVar[Mapping[str, Option]] = {
        "rest_api_key": Option(
            str, required=True, secret=True, help="Kakao Developers app's REST API key"
        ),
        "bot_id": Option(str, required=True, help="the bot's id (admin center); dev channel: id!"),
        "event_name": Option(
            str, required=True, help="the event name set on the Event block in the admin center"
        ),
        "base_url": Option(str, default=DEFAULT_BASE_URL, help="API root (tests: a fake)"),
        "timeout_seconds": Option(float, default=10.0, minimum=0.01, help="seconds per request"),
    }

    def __init__(
        self,
        options: Mapping[str, Any],
        session: aiohttp.ClientSession | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(options, session)
        o = self.options
        key = str(o["rest_api_key"])
        if not key.strip() or any(c.isspace() for c in key):
            raise ProviderConfigError(
                "providers.kakao_event.rest_api_key: must be the REST API key, without blanks"
            )
        if not _BOT_ID.match(str(o["bot_id"])):
            raise ProviderConfigError(
                "providers.kakao_event.bot_id: expected the bot id from the admin center "
                "(letters, digits, '-', '_'; a development channel's id ends in '!')"
            )
        if not str(o["event_name"]).strip():
            raise ProviderConfigError("providers.kakao_event.event_name: must not be empty")
        if not re.match(r"^https?://[^/\s]+", str(o["base_url"])):
            raise ProviderConfigError("providers.kakao_event.base_url: must be an http(s) URL")
        self.base_url = str(o["base_url"]).rstrip("/")
        self._clock = clock
        # One bucket per configured REST API key (one instance per [providers.kakao_event]).
        self.rate_limit = TokenBucket(self.rate_per_second or 1.0, monotonic=monotonic, sleep=sleep)
        # Which user an outbox ref was in a shared task: lookup needs it to find "our" entry.
        self._users: collections.OrderedDict[tuple[str, str], User] = collections.OrderedDict()

    # -- plumbing

    @property
    def talk_url(self) -> str:
        return f"{self.base_url}/v2/bots/{quote(self.options['bot_id'], safe='!')}/talk"

    def task_url(self, task_id: str) -> str:
        return f"{self.base_url}/v1/tasks/{quote(task_id, safe='')}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"KakaoAK {self.options['rest_api_key']}"}

    async def _request(
        self, method: Literal["GET", "POST"], url: str, body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP call; network failures mapped by whether the request may have left."""
        await self.throttle()
        seconds = float(self.options["timeout_seconds"])
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, 5.0))
        try:
            async with self.http().request(
                method, url, json=body, headers=self._headers(), timeout=timeout
            ) as resp:
                raw = await resp.read()
                return resp.status, dict(resp.headers), raw
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing reached Kakao: safe to try again.
            raise TransientError(
                f"카카오에 연결할 수 없어요 ({type(exc).__name__})", code="connect"
            ) from exc
        except TimeoutError as exc:  # ServerTimeoutError is one too
            raise UnknownOutcome(f"카카오 응답 시간 초과 ({seconds:g}초)", code="timeout") from exc
        except aiohttp.ClientError as exc:
            # Reset / disconnected / broken payload after the request left.
            raise UnknownOutcome(
                f"카카오 연결이 끊겼어요 ({type(exc).__name__})", code="disconnected"
            ) from exc

    # -- sending

    def user_for(self, msg: Outgoing) -> User | PermanentError:
        """Whom the talk goes to, or why `msg` cannot go by the Event API."""
        r = msg.recipient
        if not r.kakao_user_key:
            return PermanentError(
                "카카오 사용자 키가 없는 고객이에요 (카카오 채널로 대화한 적 있는 고객에게만 "
                "보낼 수 있어요)",
                code="no_kakao_key",
            )
        kind = r.kakao_key_type or DEFAULT_KEY_TYPE
        if kind not in KEY_TYPES:
            return PermanentError(f"알 수 없는 카카오 키 종류예요: {kind}", code="bad_key_type")
        if not msg.informational:
            return PermanentError(
                "카카오 이벤트 API로는 정보성 메시지만 보낼 수 있어요 (광고 불가)",
                code="ad_on_event_api",
            )
        if msg.has_image:  # text only: a picture is refused, never dropped silently
            return PermanentError("카카오 이벤트 API로는 사진을 보낼 수 없어요", code="image")
        if not msg.text.strip():
            return PermanentError("보낼 내용이 없어요", code="empty")
        if len(msg.text) > MAX_TEXT_CHARS:
            return PermanentError(
                f"본문이 너무 길어요: {len(msg.text)}자 (카카오 최대 {MAX_TEXT_CHARS}자)",
                code="too_long",
            )
        return kind, r.kakao_user_key

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        outcomes: dict[int, SendResult | ProviderError] = {}
        # text → requests, each a list of (index in batch, user); users unique per request
        requests: dict[str, list[list[tuple[int, User]]]] = {}
        seen_refs: set[str] = set()
        for i, msg in enumerate(batch):
            if msg.ref in seen_refs:
                outcomes[i] = PermanentError("같은 ref가 한 배치에 두 번 있어요", code="dup_ref")
                continue
            seen_refs.add(msg.ref)
            user = self.user_for(msg)
            if isinstance(user, PermanentError):
                outcomes[i] = user
                continue
            chunks = requests.setdefault(msg.text, [])
            for chunk in chunks:
                if len(chunk) < MAX_USERS and all(u != user for _, u in chunk):
                    chunk.append((i, user))
                    break
            else:
                chunks.append([(i, user)])
        for text, chunks in requests.items():
            for chunk in chunks:
                outcomes.update(await self._send_chunk(batch, text, chunk))
        return [outcomes[i] for i in range(len(batch))]

    async def _send_chunk(
        self, batch: Sequence[Outgoing], text: str, chunk: list[tuple[int, User]]
    ) -> dict[int, SendResult | ProviderError]:
        try:
            task_id = await self._talk(text, [u for _, u in chunk])
        except ProviderError as exc:
            shared = len(chunk) > 1
            if shared and type(exc) is PermanentError:
                # FAIL was not about our setup, so it may be about one user: nothing was
                # accepted, so asking once per user is safe and finds whose message it is.
                log.warning(
                    "kakao_event: a talk to %d users failed (%s); sending one by one",
                    len(chunk),
                    exc.describe(),
                )
                out: dict[int, SendResult | ProviderError] = {}
                for item in chunk:
                    out.update(await self._send_chunk(batch, text, [item]))
                return out
            log.warning("kakao_event: a talk to %s failed: %s", _who(chunk), exc.describe())
            return {i: exc for i, _ in chunk}
        log.info("kakao_event: task %s accepted for %s", task_id or "-", _who(chunk))
        out = {}
        for i, user in chunk:
            ref = batch[i].ref
            if task_id:
                self._remember(task_id, ref, user)
            out[i] = SendResult(ref=ref, provider_message_id=task_id, status="accepted", path=PATH)
        return out

    async def _talk(self, text: str, users: list[User]) -> str | None:
        """POST one talk; its taskId (None if Kakao accepted without one) or the error."""
        body = talk_body(self.options["event_name"], text, users)
        status, headers, raw = await self._request("POST", self.talk_url, body)
        try:
            if not 200 <= status < 300:
                raise error_for(status, headers, raw, self._clock())
            return read_talk_answer(raw)
        except ProviderError as exc:
            raise self._hide_key(exc) from None

    def _hide_key(self, exc: ProviderError) -> ProviderError:
        key = str(self.options["rest_api_key"])
        if key in exc.reason:
            exc.reason = exc.reason.replace(key, "********")
            exc.args = (exc.reason,)
        return exc

    def _remember(self, task_id: str, ref: str, user: User) -> None:
        self._users[(task_id, ref)] = user
        while len(self._users) > _REMEMBERED_MAX:  # bounded: the oldest go first
            self._users.popitem(last=False)

    # -- lookup

    async def lookup(self, ref: SendRef) -> SendResult:
        """What became of a talk: delivered or still accepted; PermanentError raised when
        Kakao lists our user as failed (not a friend, blocked, bad key, skill error);
        CannotTell without a taskId, or when Kakao no longer knows the task. Never None:
        a taskId comes only from a talk Kakao accepted, so nothing here means "not sent"."""
        task_id = ref.provider_message_id
        if not task_id:
            # The answer to the talk was lost (timeout, reset). The Event API takes no client
            # reference and has no search by user or time, so such a talk can never be found.
            raise CannotTell("카카오 이벤트 API는 taskId 없이 발송 여부를 확인할 수 없어요")
        status, _, raw = await self._request("GET", self.task_url(task_id))
        if status == 404:  # expired, or never ours: either way not a "not sent"
            raise CannotTell("카카오가 이 작업(taskId)을 찾지 못해 발송 여부를 알 수 없어요")
        if status != 200:
            raise TransientError(f"카카오 작업 조회 HTTP {status}", code=str(status))
        task = read_task(_json_object(raw))
        if task is None:
            raise TransientError("카카오 작업 결과를 읽을 수 없어요", code="bad_task")
        user = self._users.get((task_id, ref.ref))
        verdict = _verdict(task, user[1] if user else None)
        if isinstance(verdict, PermanentError):
            log.info(
                "kakao_event: task %s failed for %s: %s",
                task_id,
                mask_key(user[1]) if user else f"ref {ref.ref}",
                verdict.describe(),
            )
            raise verdict
        if verdict is None:  # still running: accepted, not yet delivered
            return SendResult(ref.ref, task_id, "accepted", PATH, "kakao pending")
        return SendResult(
            ref=ref.ref,
            provider_message_id=task_id,
            status="delivered",
            path=PATH,
            detail=f"kakao {task.status.lower() or 'done'}",
        )


def _verdict(task: TaskResult, key: str | None) -> Literal["delivered"] | PermanentError | None:
    """Our message's fate in `task`; `key` is our user's key when this process knows it."""
    if key is not None and key in task.failed:
        return failure_for_user(task.failed[key])
    if task.all_failed:
        reasons = set(task.failed.values())
        return failure_for_user(reasons.pop() if len(reasons) == 1 else "")
    if task.all_succeeded:
        return "delivered"
    if task.total == 1 and task.failed:  # a one-user task: the failed user is ours
        return failure_for_user(next(iter(task.failed.values())))
    if key is not None and task.finished and task.failed_list_complete:
        return "delivered"
    return None  # still running, or ours is hidden in a mixed result


def _who(chunk: Sequence[tuple[int, User]]) -> str:
    if len(chunk) == 1:
        return f"user {mask_key(chunk[0][1][1])}"
    return f"{len(chunk)} users"
