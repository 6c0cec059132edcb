"""Shops in the database: rows kept in step with the config, owner status, reply statistics."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import Settings
from core.db import Database
from core.models import AuditEntry, Conversation, Shop

OWNER_STATUSES = ("available", "on_site", "off")
MEDIAN_WINDOW = timedelta(days=14)
MEDIAN_SAMPLE = 200


def sync_shops(settings: Settings, now: datetime) -> Callable[[Connection], dict[str, int]]:
    """Create a row for every configured shop (rename on change); returns slug → id."""

    def unit(conn: Connection) -> dict[str, int]:
        existing = {
            r.slug: (r.id, r.name) for r in conn.execute(sa.select(Shop.id, Shop.slug, Shop.name))
        }
        ids: dict[str, int] = {}
        for shop in settings.shops:
            if shop.slug in existing:
                shop_id, name = existing[shop.slug]
                if name != shop.name:
                    conn.execute(sa.update(Shop).where(Shop.id == shop_id).values(name=shop.name))
            else:
                shop_id = conn.execute(
                    sa.insert(Shop)
                    .values(
                        slug=shop.slug, name=shop.name, owner_status="available", created_at=now
                    )
                    .returning(Shop.id)
                ).scalar_one()
            ids[shop.slug] = shop_id
        return ids

    return unit


def set_owner_status(
    shop_id: int, status: str, busy_until: datetime | None, now: datetime, actor: str = "system"
) -> Callable[[Connection], None]:
    if status not in OWNER_STATUSES:
        raise ValueError(f"owner status must be one of {', '.join(OWNER_STATUSES)}")

    def unit(conn: Connection) -> None:
        conn.execute(
            sa.update(Shop)
            .where(Shop.id == shop_id)
            .values(
                owner_status=status,
                owner_busy_until=busy_until if status == "on_site" else None,
                owner_status_changed_at=now,
            )
        )
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=shop_id,
                actor=actor,
                action="owner_status",
                subject=f"shop:{shop_id}",
                detail={
                    "status": status,
                    "busy_until": busy_until.isoformat() if busy_until else None,
                },
                created_at=now,
            )
        )

    return unit


class ReplyStats:
    """Recent median first-response time per shop, refreshed by the housekeeping tick.

    Kept in memory because the Kakao webhook quotes it on every acknowledgement and an
    aggregate per request would cost more than the rest of the request together.
    """

    def __init__(self) -> None:
        self._median: dict[int, timedelta | None] = {}

    def median(self, shop_id: int) -> timedelta | None:
        return self._median.get(shop_id)

    async def refresh(self, database: Database, shop_ids: list[int], now: datetime) -> None:
        async with database.read() as conn:
            for shop_id in shop_ids:
                rows = await conn.execute(
                    sa.select(Conversation.first_response_seconds)
                    .where(
                        Conversation.shop_id == shop_id,
                        Conversation.first_response_at >= now - MEDIAN_WINDOW,
                        Conversation.first_response_seconds.is_not(None),
                    )
                    .order_by(Conversation.first_response_at.desc())
                    .limit(MEDIAN_SAMPLE)
                )
                values = [v for v in rows.scalars() if v is not None]
                self._median[shop_id] = (
                    timedelta(seconds=statistics.median(values)) if len(values) >= 3 else None
                )
