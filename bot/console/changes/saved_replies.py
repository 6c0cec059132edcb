"""The owner adds, changes and deletes saved replies (자주 쓰는 답장)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.changes import NotFound, audit
from bot.console.viewer import Viewer
from core.db import Unit
from core.models import SavedReply


def save_reply(
    viewer: Viewer, reply_id: int | None, title: str, body: str, now: datetime
) -> Unit[int]:
    """Create (`reply_id` None) or change a saved reply; returns its id."""

    def unit(conn: Connection) -> int:
        if reply_id is None:
            new_id: int = conn.execute(
                sa.insert(SavedReply)
                .values(
                    shop_id=viewer.shop_id,
                    title=title,
                    body=body,
                    created_at=now,
                    updated_at=now,
                )
                .returning(SavedReply.id)
            ).scalar_one()
            audit(conn, viewer, "saved_reply_added", f"saved_reply:{new_id}", now)
            return new_id
        done = conn.execute(
            sa.update(SavedReply)
            .where(viewer.scope(SavedReply.shop_id), SavedReply.id == reply_id)
            .values(title=title, body=body, updated_at=now)
        ).rowcount
        if done != 1:
            raise NotFound(f"saved reply {reply_id}")
        audit(conn, viewer, "saved_reply_changed", f"saved_reply:{reply_id}", now)
        return reply_id

    return unit


def delete_reply(viewer: Viewer, reply_id: int, now: datetime) -> Unit[None]:
    def unit(conn: Connection) -> None:
        row = conn.execute(
            sa.delete(SavedReply)
            .where(viewer.scope(SavedReply.shop_id), SavedReply.id == reply_id)
            .returning(SavedReply.title)
        ).first()
        if row is None:
            raise NotFound(f"saved reply {reply_id}")
        audit(
            conn,
            viewer,
            "saved_reply_deleted",
            f"saved_reply:{reply_id}",
            now,
            {"title": row.title},
        )

    return unit
