"""Small pieces of SOLAPI's wire format: endpoints, numbers, message types, our id."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from providers.base import PermanentError, Recipient

SEND_PATH = "/messages/v4/send-many/detail"
LIST_PATH = "/messages/v4/list"
STORAGE_PATH = "/storage/v1/files"
OUR_ID = "ourId"  # the customFields key carrying our outbox id


def to_national_number(recipient: Recipient) -> str:
    """01012345678 for +821012345678 / 010-1234-5678; PermanentError for others."""
    phone = recipient.phone
    if not phone:
        raise PermanentError("전화번호가 없어요", code="no_phone")
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+"):
        if not digits.startswith("82"):
            raise PermanentError(
                "해외 번호는 SOLAPI로 보내지 않아요 (Twilio를 설정하세요)", code="foreign_number"
            )
        rest = digits[2:]
        digits = rest if rest.startswith("0") else "0" + rest
    if not digits.startswith("0") or not 9 <= len(digits) <= 11:
        raise PermanentError("전화번호 형식이 잘못됐어요", code="bad_number")
    return digits


def variable_name(name: str) -> str:
    return name if name.startswith("#{") and name.endswith("}") else f"#{{{name}}}"


def path_for_type(kind: str | None) -> str:
    if kind and kind.startswith("BMS_"):
        return "brand_message"
    return {"ATA": "alimtalk", "CTA": "friendtalk", "CTI": "friendtalk"}.get(
        kind or "", (kind or "solapi").lower()
    )


def custom_ref(entry: Mapping[str, Any]) -> str | None:
    fields = entry.get("customFields")
    if isinstance(fields, Mapping):
        ref = fields.get(OUR_ID)
        return str(ref) if ref not in (None, "") else None
    return None
