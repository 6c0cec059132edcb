"""A customer as the console shows them: name, tier, tags, notes, masked phone, consents
and past conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.viewer import Viewer
from core.models import Consent, Conversation, Customer, CustomerIdentity
from core.phone import to_domestic
from providers.masking import mask_phone

PAST_CONVERSATIONS = 20

C = Conversation


@dataclass(frozen=True)
class ConsentView:
    granted: bool
    source: str
    at: datetime  # local


@dataclass(frozen=True)
class PastConversation:
    id: int
    status: str
    channel: str
    created_at: datetime
    last_message_at: datetime


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str | None
    tier: str | None  # bronze | silver | gold, from completed jobs; None before the first
    tags: list[str]
    notes: str
    phone_masked: str | None
    channels: list[str]  # kinds of address: kakao_bot_user, phone…
    marketing: ConsentView | None
    night: ConsentView | None
    conversations: list[PastConversation]
    created_at: datetime

    @property
    def label(self) -> str:
        return self.name or f"#{self.id}"


def clean_tags(value: object) -> list[str]:
    """Tags as stored are whatever JSON the column holds; show only strings."""
    if not isinstance(value, list):
        return []
    return [t for t in value if isinstance(t, str)]


async def read_customer(
    conn: AsyncConnection, viewer: Viewer, customer_id: int, tz: ZoneInfo
) -> CustomerView | None:
    row = (
        await conn.execute(
            sa.select(
                Customer.id,
                Customer.name,
                Customer.tier,
                Customer.tags,
                Customer.notes,
                Customer.created_at,
            ).where(viewer.scope(Customer.shop_id), Customer.id == customer_id)
        )
    ).first()
    if row is None:
        return None
    addresses = (
        await conn.execute(
            sa.select(CustomerIdentity.kind, CustomerIdentity.value)
            .where(
                viewer.scope(CustomerIdentity.shop_id),
                CustomerIdentity.customer_id == customer_id,
            )
            .order_by(CustomerIdentity.id)
        )
    ).all()
    phone = next((a.value for a in addresses if a.kind == "phone"), None)
    consents: dict[str, ConsentView] = {}
    for c in await conn.execute(
        sa.select(Consent.scope, Consent.granted, Consent.source, Consent.created_at)
        .where(viewer.scope(Consent.shop_id), Consent.customer_id == customer_id)
        .order_by(Consent.created_at, Consent.id)
    ):
        consents[c.scope] = ConsentView(bool(c.granted), c.source, c.created_at.astimezone(tz))
    past = (
        await conn.execute(
            sa.select(C.id, C.status, C.channel, C.created_at, C.last_message_at)
            .where(viewer.scope(C.shop_id), C.customer_id == customer_id)
            .order_by(C.id.desc())
            .limit(PAST_CONVERSATIONS)
        )
    ).all()
    return CustomerView(
        id=row.id,
        name=row.name,
        tier=row.tier,
        tags=clean_tags(row.tags),
        notes=row.notes or "",
        phone_masked=mask_phone(to_domestic(phone)) if phone else None,
        channels=sorted({a.kind for a in addresses}),
        marketing=consents.get("marketing"),
        night=consents.get("night"),
        conversations=[
            PastConversation(
                p.id,
                p.status,
                p.channel,
                p.created_at.astimezone(tz),
                p.last_message_at.astimezone(tz),
            )
            for p in past
        ],
        created_at=row.created_at.astimezone(tz),
    )
