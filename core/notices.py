"""Outbox rows that tell the owner something, one per way they want to hear it.

Built here for every kind of notice (a new conversation, a reply target about to pass) so
they all reach the owner the same way: through each provider in `[shops.owner] notify_via`,
coalesced by the caller's idempotency key. With `[shops.owner] alimtalk_template` set they
also carry that approved AlimTalk template and its variables — SOLAPI then sends AlimTalk
(falling back to SMS if the owner cannot get it); providers without templates send the
plain text.

The template's variables, for registering it at Kakao (values in the examples):
``#{가게}`` 한빛설비 · ``#{종류}`` 새 문의 · ``#{고객}`` 고객 #12 · ``#{내용}`` 에어컨에서 물이 새요

A notice must always be sendable, whatever the customer typed. The plain text goes as it is
and each channel makes it fit: SOLAPI's SMS, which cannot carry an emoji, puts □ in its place
for the owner (providers/sms_text.py) where it would refuse a customer's message. ``#{내용}``
is made to fit here, as AlimTalk falls back to an SMS built from it. A notice that fails all
the same is shown in the console (bot/console/queries/header.py `_failed_notices`) for as long as
its customer waits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.config import ShopConfig
from core.outbox import OutboxRequest
from providers.sms_text import UNSHOWN, to_cp949_text

EXCERPT = 60  # characters of the customer's words in #{내용}


def owner_notices(
    shop: ShopConfig,
    shop_id: int,
    conversation_id: int | None,
    *,
    text: str,
    kind: str,
    customer_label: str,
    content: str,
    key: Callable[[str], str],
    now: datetime,
) -> list[OutboxRequest]:
    """`key(provider)` is each row's idempotency key: the same notice is queued once per
    provider, however many processes or messages ask for it."""
    owner = shop.owner
    payload: dict[str, Any] = {"text": text, "conversation_id": conversation_id}
    if owner.alimtalk_template:
        one_line = to_cp949_text(" ".join(content.split()), replace_with=UNSHOWN)
        payload["template"] = owner.alimtalk_template
        payload["variables"] = {
            "가게": shop.name,
            "종류": kind,
            "고객": customer_label,
            "내용": one_line[:EXCERPT] + ("…" if len(one_line) > EXCERPT else ""),
        }
    return [
        OutboxRequest(
            shop_id=shop_id,
            purpose="owner_notification",
            provider=provider,
            recipient={"owner": True, "name": owner.name, "phone": owner.phone},
            payload=dict(payload),
            idempotency_key=key(provider),
            now=now,
        )
        for provider in owner.notify_via
    ]
