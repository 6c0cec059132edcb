"""`KakaoEventProvider`: talks sent to the Event API, and their tasks looked up."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    SendRef,
    SendResult,
    TokenBucket,
    TransientError,
    UnknownOutcome,
    mask_key,
)
from providers.kakao_event.tasks import read_task, task_verdict
from providers.kakao_event.wire import (
    User,
    error_for,
    json_object,
    read_talk_answer,
    talk_body,
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
_REMEMBERED_MAX = 20_000  # (taskId, ref) → user, for lookups by this process


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
        task = read_task(json_object(raw))
        if task is None:
            raise TransientError("카카오 작업 결과를 읽을 수 없어요", code="bad_task")
        user = self._users.get((task_id, ref.ref))
        verdict = task_verdict(task, user[1] if user else None)
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


def _who(chunk: Sequence[tuple[int, User]]) -> str:
    if len(chunk) == 1:
        return f"user {mask_key(chunk[0][1][1])}"
    return f"{len(chunk)} users"
