"""Every Twilio answer that is not a success, mapped to the error family once, with the
Korean reasons the console shows for the error codes owners meet."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from providers.base import (
    OptedOut,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
    UnknownOutcome,
    mask_in_text,
    parse_retry_after,
)

OPT_OUT_CODE = "21610"

# Twilio error codes we explain in Korean (the console shows these); others keep Twilio's text.
ERROR_REASONS: dict[str, str] = {
    "21610": "수신거부한 번호예요",
    "21211": "잘못된 전화번호예요",
    "21214": "잘못된 전화번호예요",
    "21408": "이 국가로 보내는 권한이 Twilio 계정에 없어요",
    "21606": "발신번호가 SMS를 보낼 수 없는 번호예요",
    "21612": "이 발신번호로는 이 수신번호에 보낼 수 없어요",
    "21614": "휴대전화 번호가 아니에요",
    "21617": "본문이 너무 길어요 (1600자 초과)",
    "21660": "발신번호가 이 Twilio 계정의 번호가 아니에요",
    "30003": "수신 단말에 연결할 수 없어요",
    "30004": "수신이 차단된 번호예요",
    "30005": "없는 번호예요",
    "30006": "유선 전화이거나 통신사에 연결할 수 없어요",
    "30007": "통신사 스팸 필터에 걸렸어요",
    "30008": "알 수 없는 전달 오류예요",
    "30034": "미등록 발신번호예요 (A2P 10DLC)",
}


def reason_for(code: str | None, fallback: str = "") -> str:
    if code and code in ERROR_REASONS:
        return ERROR_REASONS[code]
    return mask_in_text(fallback) if fallback else (f"Twilio 오류 {code}" if code else "")


def error_for(status: int, headers: Mapping[str, str], text: str) -> ProviderError:
    """Map a non-success Twilio answer to the error family."""
    data = json_object(text) or {}
    raw_code = data.get("code")
    code = str(raw_code) if raw_code not in (None, "") else None
    message = str(data.get("message") or "")
    if status == 429:
        return RateLimited(
            reason_for(code, "Twilio 요청 한도 초과"),
            retry_after=retry_after_of(headers),
            code=code or "429",
        )
    if status in (401, 403):
        return PermanentError(
            "Twilio 인증 실패: account_sid / auth_token을 확인하세요"
            + (f" ({mask_in_text(message)})" if message else ""),
            code="auth",
        )
    if status >= 500:
        return UnknownOutcome(f"Twilio 서버 오류 HTTP {status}", code=str(status))
    if 400 <= status < 500:
        refused = OptedOut if code == OPT_OUT_CODE else PermanentError
        return refused(
            reason_for(code, message or f"Twilio가 거절했어요 (HTTP {status})"),
            code=code or str(status),
        )
    return UnknownOutcome(f"Twilio의 예상 밖 응답 HTTP {status}", code=str(status))


def media_error(status: int, headers: Mapping[str, str]) -> ProviderError:
    if status == 404:
        return PermanentError("Twilio에 첨부가 없어요 (지워졌어요)", code="404")
    if status in (401, 403):
        return PermanentError(
            "Twilio 인증 실패: account_sid / auth_token을 확인하세요", code="auth"
        )
    if status == 429:
        return RateLimited("Twilio 요청 한도 초과", retry_after=retry_after_of(headers), code="429")
    if status >= 500:
        return TransientError(f"Twilio 서버 오류 HTTP {status}", code=str(status))
    return PermanentError(f"Twilio가 첨부를 주지 않았어요 (HTTP {status})", code=str(status))


def media_too_large(max_bytes: int) -> PermanentError:
    return PermanentError(f"첨부가 너무 커요 ({max_bytes // 1_000_000} MB 초과)", code="too-large")


def retry_after_of(headers: Mapping[str, str]) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value, datetime.now(UTC))


def json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
