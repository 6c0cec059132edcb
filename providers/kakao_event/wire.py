"""The Event API's wire format: the talk request, and every answer mapped to the error
family once (the table in `providers.kakao_event`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from providers.base import (
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
    UnknownOutcome,
    mask_key,
    parse_retry_after,
)

# Long runs that look like user keys or task ids: vendor messages may echo them.
KEY_LIKE = re.compile(r"[0-9A-Za-z_\-]{20,}")

User = tuple[str, str]  # (key type, key)


class KakaoEventAccountError(PermanentError):
    """Our Kakao setup is wrong (REST API key, bot id, event name, wallet): fix, then requeue."""


def talk_body(event_name: str, text: str, users: Iterable[User]) -> dict[str, Any]:
    """The JSON body of one talk request (fixtures/kakao/event-api-request.json)."""
    return {
        "event": {"name": event_name, "data": {"text": text}},
        "user": [{"type": kind, "id": key} for kind, key in users],
        "params": {},
    }


def mask_keys_in(text: str) -> str:
    """Vendor text with key-like runs masked (they may echo a user key)."""
    return KEY_LIKE.sub(lambda m: mask_key(m.group()), text)


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


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def error_for(status: int, headers: Mapping[str, str], raw: bytes, now: datetime) -> ProviderError:
    """Map a talk answer that is not a 2xx to the error family."""
    data = json_object(raw) or {}
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
    data = json_object(raw)
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
