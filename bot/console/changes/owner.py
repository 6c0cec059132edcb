"""The owner's status as the console sets it (대기 중, 현장 작업 중 until a time, 오늘 휴무):
stored by core/shops.py, announced to the shop's live consoles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from bot.console.viewer import Viewer
from bot.live import announce, owner_status_event
from core.db import Unit
from core.shops import set_owner_status


def owner_status(
    viewer: Viewer, status: str, busy_until: datetime | None, now: datetime
) -> Unit[None]:
    set_status = set_owner_status(viewer.shop_id, status, busy_until, now, actor=viewer.actor)

    def unit(conn: Connection) -> None:
        set_status(conn)
        announce(viewer.shop_id, owner_status_event(status))

    return unit
