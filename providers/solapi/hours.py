"""Kakao's hours for brand messages, which SOLAPI enforces (PROTOCOLS.md §4.3, SOLAPI 3108).

Kakao takes ad messages (brand messages, formerly FriendTalk) only 08:00–20:00 KST, stricter
than the law. That is the vendor's rule, so it stays with the adapter; the law's own rules
for ads — consent, the 21:00–08:00 night ban, the ``(광고)`` and opt-out marking — are the
send-time policy's (`scheduler.policy`), checked before any vendor sees the message.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

# Korea has kept UTC+9 without daylight saving since 1988: a fixed offset needs no tzdata.
KST = timezone(timedelta(hours=9), "KST")
BRAND_MESSAGE_HOURS = (time(8), time(20))  # [opens, closes) in KST


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
