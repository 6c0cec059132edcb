"""Korean rules for advertising messages that an adapter can check by itself (PROTOCOLS.md §4).

The marking — ``(광고)`` at the very start, a free opt-out line at the end — and the hours
an ad may go. Consent is the send-time policy's to check: an adapter cannot see it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

from providers.base import PermanentError

# Korea has kept UTC+9 without daylight saving since 1988: a fixed offset needs no tzdata.
KST = timezone(timedelta(hours=9), "KST")
# When an ad may go, [opens, closes) in KST (PROTOCOLS.md §4.1, §4.3). Kakao takes its ad
# messages 08:00–20:00 (SOLAPI 3108); the law bans ads 21:00–08:00 without a separate
# night-time consent, which the adapter cannot see.
BRAND_MESSAGE_HOURS = (time(8), time(20))
AD_SMS_HOURS = (time(8), time(21))
AD_MARK = "(광고)"  # exactly this, at the very start: not [광고], (광 고), （광고） (§4.1)
OPT_OUT_WORDS = ("무료수신거부", "무료거부")  # the free opt-out line, at the end (§4.1)


def check_ad_marking(text: str) -> None:
    """PermanentError (code ``ad_marking``) unless `text` starts with exactly ``(광고)`` and
    its last non-empty line names the free opt-out (``무료수신거부`` / ``무료거부``).

    Such a text is unlawful on any channel (정보통신망법 §50, 시행령 §61), so sending it
    later or elsewhere cannot help. The sender's name and contact are the policy's to add:
    the contact may be left out when it is the calling number, so it cannot be checked here.
    """
    if not text.startswith(AD_MARK):
        raise PermanentError(
            "광고 메시지는 맨 앞이 정확히 '(광고)'로 시작해야 해요 "
            "('[광고]', '(광 고)', 앞의 빈칸 등은 안 돼요)",
            code="ad_marking",
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not any(word in lines[-1] for word in OPT_OUT_WORDS):
        raise PermanentError(
            "광고 메시지의 마지막 줄에 무료 수신거부 방법이 있어야 해요 "
            "(예: '무료수신거부 080-000-0000')",
            code="ad_marking",
        )


def seconds_outside_hours(now: datetime, hours: tuple[time, time]) -> float | None:
    """None when `now` is within `hours` ([opens, closes) in KST), else the seconds until
    they next open."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(KST)
    opens, closes = hours
    if opens <= local.time() < closes:
        return None
    day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    return (datetime.combine(day, opens, tzinfo=KST) - local).total_seconds()
