"""A conversation's page: the conversation itself and its timeline — messages, notes and
the console's own events, with their delivery state and photos."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.queries import local
from bot.console.queries.waiting import level_of
from bot.console.viewer import Viewer
from bot.inbound import attachment_links
from core.models import Conversation, Message

TIMELINE_LIMIT = 300  # newest messages shown; older ones behind a link

C = Conversation
M = Message


@dataclass(frozen=True)
class ConversationView:
    id: int
    customer_id: int
    channel: str
    status: str
    waiting_since: datetime | None
    waited_minutes: int | None
    level: str
    sla_due_at: datetime | None
    complaint: bool
    complaint_due_at: datetime | None
    handoff_requested_at: datetime | None
    snoozed_until: datetime | None
    unread: int
    created_at: datetime
    resolved_at: datetime | None


async def read_conversation(
    conn: AsyncConnection,
    viewer: Viewer,
    conversation_id: int,
    *,
    now: datetime,
    tz: ZoneInfo,
    target_minutes: int,
) -> ConversationView | None:
    c = (
        await conn.execute(
            sa.select(C.__table__).where(viewer.scope(C.shop_id), C.id == conversation_id)
        )
    ).first()
    if c is None:
        return None
    waited = None
    if c.waiting_since is not None and c.status != "resolved":
        waited = max(0, int((now - c.waiting_since).total_seconds() // 60))
    return ConversationView(
        id=c.id,
        customer_id=c.customer_id,
        channel=c.channel,
        status=c.status,
        waiting_since=local(c.waiting_since, tz),
        waited_minutes=waited,
        level=level_of(waited, target_minutes),
        sla_due_at=local(c.sla_due_at, tz),
        complaint=bool(c.complaint),
        complaint_due_at=local(c.complaint_due_at, tz),
        handoff_requested_at=local(c.handoff_requested_at, tz),
        snoozed_until=local(c.snoozed_until, tz) if c.status == "snoozed" else None,
        unread=c.unread_count,
        created_at=c.created_at.astimezone(tz),
        resolved_at=local(c.resolved_at, tz),
    )


@dataclass(frozen=True)
class TimelineItem:
    id: int
    direction: str  # in | out | note
    sender: str  # customer | bot | owner | system
    body: str
    status: str
    path: str | None
    error: str | None
    author: str | None  # who of the shop wrote it (owner replies and notes)
    event: str | None  # system events: resolved | reopened | snoozed
    detail: dict[str, Any]
    attachments: list[dict[str, Any]]
    at: datetime  # local
    delivered_at: datetime | None
    # paths that could not deliver it, oldest first: {"path", "reason"} (core.replies.fall_back)
    fell_back: list[dict[str, str]] = field(default_factory=list)
    # a customer's MMS (bot.customer_photos): photos still being fetched, and why any failed
    photos_coming: int = 0
    media_problems: list[str] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """Its delivery state may still change (the page keeps it up to date)."""
        return self.direction == "out" and self.status in ("queued", "held", "sent")


def _detail(payload: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A system event's particulars: who, and until when (as local time)."""
    detail: dict[str, Any] = {}
    if isinstance(payload.get("by"), str):
        detail["by"] = payload["by"]
    if isinstance(payload.get("until"), str):
        with contextlib.suppress(ValueError):
            detail["until"] = datetime.fromisoformat(payload["until"]).astimezone(tz)
    return detail


def _item(r: Any, tz: ZoneInfo) -> TimelineItem:
    payload = r.payload if isinstance(r.payload, dict) else {}
    attachments = payload.get("attachments")
    event = payload.get("event") if r.sender == "system" else None
    return TimelineItem(
        id=r.id,
        direction=r.direction,
        sender=r.sender,
        body=r.body,
        status=r.status,
        path=r.path,
        error=r.error,
        author=str(payload["author"]) if payload.get("author") else None,
        event=str(event) if event else None,
        detail=_detail(payload, tz),
        attachments=[a for a in attachments if isinstance(a, dict)]
        if isinstance(attachments, list)
        else [],
        at=r.created_at.astimezone(tz),
        delivered_at=local(r.delivered_at, tz),
        fell_back=[
            {"path": str(f.get("path") or ""), "reason": str(f.get("reason") or "")}
            for f in payload.get("fell_back", [])
            if isinstance(f, dict)
        ],
        **_customer_media(payload),
    )


def _customer_media(payload: dict[str, Any]) -> dict[str, Any]:
    """A customer's MMS: how many photos are still on their way, or why any did not come."""
    media = payload.get("media")
    if isinstance(media, list):
        problems = [str(m["error"]) for m in media if isinstance(m, dict) and m.get("error")]
        return {"media_problems": problems}
    waiting = len(attachment_links(payload.get("extra")))
    return {"photos_coming": waiting} if waiting else {}


_TIMELINE_COLUMNS = (
    M.id,
    M.direction,
    M.sender,
    M.body,
    M.status,
    M.path,
    M.error,
    M.payload,
    M.created_at,
    M.delivered_at,
)


async def read_timeline(
    conn: AsyncConnection,
    viewer: Viewer,
    conversation_id: int,
    tz: ZoneInfo,
    *,
    after: int | None = None,
    before: int | None = None,
    only: int | None = None,
    limit: int | None = None,
) -> tuple[list[TimelineItem], bool]:
    """Messages in order, oldest first: the newest `limit` (before `before`), those after
    `after`, or the one `only`. Also whether older messages exist."""
    limit = limit or TIMELINE_LIMIT
    where = [viewer.scope(M.shop_id), M.conversation_id == conversation_id]
    if only is not None:
        where.append(M.id == only)
    if after is not None:
        where.append(M.id > after)
    if before is not None:
        where.append(M.id < before)
    if after is not None:
        stmt = sa.select(*_TIMELINE_COLUMNS).where(*where).order_by(M.id).limit(limit)
        found = (await conn.execute(stmt)).all()
        return [_item(r, tz) for r in found], False
    stmt = sa.select(*_TIMELINE_COLUMNS).where(*where).order_by(M.id.desc()).limit(limit + 1)
    found = (await conn.execute(stmt)).all()
    older = len(found) > limit
    return [_item(r, tz) for r in reversed(found[:limit])], older
