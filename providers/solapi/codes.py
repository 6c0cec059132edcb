"""SOLAPI's 4-digit message status codes (PROTOCOLS.md §2.3 table), each mapped once to the
error family: the send answer's `failedMessageList`, delivery reports and lookups all use
`classify_status`."""

from __future__ import annotations

from datetime import datetime

from providers.base import (
    NotYet,
    OptedOut,
    PermanentError,
    ProviderError,
    TransientError,
)
from providers.solapi.hours import BRAND_MESSAGE_HOURS, seconds_outside_hours

# A 3108 while our clock says "inside the hours" is clock skew at an edge: ask again soon,
# and our own check decides whether it is morning yet or evening already.
SKEWED_WINDOW_RETRY = 60.0


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
