"""SOLAPI delivery-report webhooks (PROTOCOLS.md §2.3): a webhook body → `DeliveryReport`s.

The order of statuses, and applying reports, are not SOLAPI's: `providers.base.DeliveryStatus`
and `core.delivery`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from providers.base import DeliveryReport, DeliveryStatus, OptedOut, RejectedWebhook
from providers.solapi.codes import classify_status
from providers.solapi.wire import custom_ref, path_for_type


def status_for_code(code: str) -> DeliveryStatus:
    if code == "2000":
        return DeliveryStatus.ACCEPTED
    if code == "3000":
        return DeliveryStatus.SENT
    if code == "4000":
        return DeliveryStatus.DELIVERED
    return DeliveryStatus.FAILED


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_report(body: bytes) -> list[DeliveryReport]:
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
    reports: list[DeliveryReport] = []
    for item in data:
        event = item.get("eventDataId")
        payload = item.get("data")
        if not event or not isinstance(payload, Mapping) or not payload.get("messageId"):
            continue
        code = str(payload.get("statusCode") or "")
        message = str(payload.get("statusMessage") or "")
        status = status_for_code(code)
        error = classify_status(code, message) if status is DeliveryStatus.FAILED else None
        kind = payload.get("type")
        reports.append(
            DeliveryReport(
                event_id=str(event),
                message_id=str(payload["messageId"]),
                status=status,
                ref=custom_ref(payload),
                code=code or None,
                detail=message,
                reason=error.describe() if error else "",
                opted_out=isinstance(error, OptedOut),
                path=path_for_type(str(kind) if kind else None),
                reported_at=_parse_time(payload.get("dateReported")),
            )
        )
    return reports
