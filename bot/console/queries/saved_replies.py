"""The shop's saved replies (자주 쓰는 답장), by title."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.viewer import Viewer
from core.models import SavedReply


@dataclass(frozen=True)
class SavedReplyView:
    id: int
    title: str
    body: str
    updated_at: datetime


async def read_saved_replies(
    conn: AsyncConnection, viewer: Viewer, tz: ZoneInfo
) -> list[SavedReplyView]:
    rows = await conn.execute(
        sa.select(SavedReply.id, SavedReply.title, SavedReply.body, SavedReply.updated_at)
        .where(viewer.scope(SavedReply.shop_id))
        .order_by(SavedReply.title, SavedReply.id)
    )
    return [SavedReplyView(r.id, r.title, r.body, r.updated_at.astimezone(tz)) for r in rows]
