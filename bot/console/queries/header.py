"""The header every signed-in console page shows: the owner's status, how many customers
are waiting, and the owner's notices that could not be sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.queries import local
from bot.console.queries.waiting import waiting_now
from bot.console.viewer import Viewer
from core.models import Conversation, OutboxItem, Shop

C = Conversation


@dataclass(frozen=True)
class FailedNotice:
    """A notice to the owner that could not be sent, about a customer still waiting."""

    conversation_id: int
    customer_id: int
    provider: str
    error: str
    at: datetime  # local: when it was given up


@dataclass(frozen=True)
class Header:
    """What every signed-in page shows at the top: the owner's status, who is waiting, and
    the owner's notices that failed — the owner was never told of those customers."""

    owner_status: str  # available | on_site | off
    busy_until: datetime | None  # local
    waiting: int  # conversations waiting for an answer right now
    failed_notices: tuple[FailedNotice, ...] = ()


FAILED_NOTICES_SHOWN = 5
_NOTICE_CONVERSATION = OutboxItem.payload["conversation_id"].as_integer()


async def read_header(conn: AsyncConnection, viewer: Viewer, now: datetime, tz: ZoneInfo) -> Header:
    row = (
        await conn.execute(
            sa.select(Shop.owner_status, Shop.owner_busy_until).where(viewer.scope(Shop.id))
        )
    ).one()
    waiting = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(C)
            .where(viewer.scope(C.shop_id), waiting_now(now))
        )
    ).scalar_one()
    failed = tuple(
        FailedNotice(
            r.conversation_id, r.customer_id, r.provider, r.error or "", r.at.astimezone(tz)
        )
        for r in await conn.execute(_failed_notices(viewer, now))
    )
    return Header(row.owner_status, local(row.owner_busy_until, tz), int(waiting), failed)


def _failed_notices(
    viewer: Viewer, now: datetime
) -> sa.Select[int, int, str, str | None, datetime]:
    """Dead owner notices whose customer still waits: shown until someone answers (or
    resolves, or snoozes) — whatever the reason, the owner should not hear of it late from
    an angry customer. Dead rows are few, and `status` leads the outbox's due index."""
    return (
        sa.select(
            C.id.label("conversation_id"),
            C.customer_id,
            OutboxItem.provider,
            OutboxItem.last_error.label("error"),
            OutboxItem.updated_at.label("at"),
        )
        .join(C, C.id == _NOTICE_CONVERSATION)
        .where(
            viewer.scope(OutboxItem.shop_id),
            OutboxItem.purpose == "owner_notification",
            OutboxItem.status == "dead",
            C.shop_id == OutboxItem.shop_id,
            waiting_now(now),
        )
        .order_by(OutboxItem.updated_at.desc(), OutboxItem.id.desc())
        .limit(FAILED_NOTICES_SHOWN)
    )
