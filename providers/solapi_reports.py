"""SOLAPI delivery-report webhooks: parsing and the order of statuses (PROTOCOLS.md §2.3).

`parse_report` reads a webhook body into `Report`s; `status_advances` says whether a report
may replace the status a message has (a late "accepted" never overwrites "delivered").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from providers.base import ProviderError, RejectedWebhook
from providers.solapi import _custom_ref, classify_status, path_for_type

ReportStatus = Literal["accepted", "sent", "delivered", "failed"]

# accepted < sent < delivered = failed: a final status is never replaced by an earlier one,
# and the first final status wins.
STATUS_RANK: dict[str, int] = {"accepted": 1, "sent": 2, "delivered": 3, "failed": 3}


def status_for_code(code: str) -> ReportStatus:
    if code == "2000":
        return "accepted"
    if code == "3000":
        return "sent"
    if code == "4000":
        return "delivered"
    return "failed"


def status_advances(current: str | None, new: str) -> bool:
    """Should `new` replace `current`? Only when it is strictly later in the order."""
    if current is None:
        return True
    return STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0)


@dataclass(frozen=True, slots=True)
class Report:
    """One single-message delivery report. `event_id` is the dedupe key."""

    event_id: str
    message_id: str
    ref: str | None  # our outbox id (customFields.ourId)
    status: ReportStatus
    status_code: str
    status_message: str
    path: str
    reported_at: datetime | None
    retry_count: int
    error: ProviderError | None  # for "failed": the classified reason


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_report(body: bytes) -> list[Report]:
    """Single-message reports from a SOLAPI webhook body (a JSON array).

    Group reports (no messageId) and malformed items are skipped; a body that is not a
    JSON array of objects is a RejectedWebhook (HTTP 400).
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
        raise RejectedWebhook("SOLAPI report is not JSON", http_status=400) from None
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise RejectedWebhook("SOLAPI report must be a JSON array of objects", http_status=400)
    reports: list[Report] = []
    for item in data:
        event = item.get("eventDataId")
        payload = item.get("data")
        if not event or not isinstance(payload, Mapping) or not payload.get("messageId"):
            continue
        code = str(payload.get("statusCode") or "")
        message = str(payload.get("statusMessage") or "")
        status = status_for_code(code)
        retry = item.get("retryCount")
        kind = payload.get("type")
        reports.append(
            Report(
                event_id=str(event),
                message_id=str(payload["messageId"]),
                ref=_custom_ref(payload),
                status=status,
                status_code=code,
                status_message=message,
                path=path_for_type(str(kind) if kind else None),
                reported_at=_parse_time(payload.get("dateReported")),
                retry_count=retry if isinstance(retry, int) else 0,
                error=classify_status(code, message) if status == "failed" else None,
            )
        )
    return reports
