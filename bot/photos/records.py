"""The `photos` rows: recording a stored file in a conversation, marking it sent with a
message, finding it again for a reply, and the attachment a message carries for it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.photos.cleaning import CONTENT_TYPE, Prepared
from core.db import Database
from core.models import Conversation, Photo

ORIGINAL_NAME_MAX = 200


def clean_original_name(name: str | None) -> str:
    """The upload's file name, for display only: no path, no control characters, bounded."""
    if not name:
        return ""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return base.strip()[:ORIGINAL_NAME_MAX]


class ConversationNotFound(Exception):
    """The conversation is not this shop's (or does not exist)."""


def record_photo(
    *,
    shop_id: int,
    conversation_id: int,
    stored_name: str,
    original_name: str,
    prepared: Prepared,
    uploaded_by: int | None,
    now: datetime,
    message_id: int | None = None,
) -> Callable[[Connection], int]:
    """A unit: the `photos` row of a stored file, in a conversation of the shop; its id.
    `message_id`: the message it came with, when known now (a customer's MMS)."""

    def unit(conn: Connection) -> int:
        found = conn.execute(
            sa.select(Conversation.id).where(
                Conversation.id == conversation_id, Conversation.shop_id == shop_id
            )
        ).first()
        if found is None:
            raise ConversationNotFound(conversation_id)
        photo_id: int = conn.execute(
            sa.insert(Photo)
            .values(
                shop_id=shop_id,
                conversation_id=conversation_id,
                message_id=message_id,
                stored_name=stored_name,
                original_name=original_name,
                content_type=CONTENT_TYPE,
                width=prepared.width,
                height=prepared.height,
                size_bytes=len(prepared.jpeg),
                uploaded_by=uploaded_by,
                created_at=now,
            )
            .returning(Photo.id)
        ).scalar_one()
        return photo_id

    return unit


def link_to_message(conn: Connection, shop_id: int, photo_id: int, message_id: int) -> bool:
    """Inside the reply's unit: mark the photo as sent with that message (False: not found)."""
    result = conn.execute(
        sa.update(Photo)
        .where(Photo.id == photo_id, Photo.shop_id == shop_id)
        .values(message_id=message_id)
    )
    return bool(result.rowcount)


_ATTACHMENT = sa.select(Photo.id, Photo.stored_name, Photo.width, Photo.height).where(
    Photo.id == sa.bindparam("photo_id"),
    Photo.shop_id == sa.bindparam("shop_id"),
    Photo.conversation_id == sa.bindparam("conversation_id"),
)


async def find_attachment(
    database: Database, *, shop_id: int, conversation_id: int, photo_id: int
) -> dict[str, Any] | None:
    """The attachment for a photo uploaded into this conversation of this shop, or None
    (another shop's or another conversation's photo id is simply not found)."""
    params = {"photo_id": photo_id, "shop_id": shop_id, "conversation_id": conversation_id}
    async with database.read() as conn:
        row = (await conn.execute(_ATTACHMENT, params)).first()
    return None if row is None else attachment(row.id, row.stored_name, row.width, row.height)


def public_path(stored_name: str) -> str:
    """The customer-facing capability URL's path: whoever has it can see the photo."""
    return f"/p/{stored_name}"


def attachment(photo_id: int, stored_name: str, width: int, height: int) -> dict[str, Any]:
    """What a message's `attachments` list holds for a photo (see core/replies.py).

    `url` is relative; prefix `server.public_url` where a vendor needs an absolute
    https URL (Kakao simpleImage, Twilio MediaUrl).
    """
    return {
        "photo_id": photo_id,
        "url": public_path(stored_name),
        "width": width,
        "height": height,
        "content_type": CONTENT_TYPE,
    }
