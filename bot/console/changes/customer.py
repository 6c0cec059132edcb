"""What the console changes about a customer: the name, tags and notes the shop keeps,
and the audit-logged reveal of their phone number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.changes import NotFound, audit
from bot.console.viewer import Viewer
from bot.live import announce
from core.db import Unit
from core.models import Customer, CustomerIdentity


@dataclass(frozen=True)
class CustomerEdit:
    name: str | None
    tags: list[str]
    notes: str


def update_customer(
    viewer: Viewer, customer_id: int, edit: CustomerEdit, now: datetime
) -> Unit[bool]:
    """Save name, tags and notes; the audit entry names the fields that changed."""

    def unit(conn: Connection) -> bool:
        row = conn.execute(
            sa.select(Customer.name, Customer.tags, Customer.notes).where(
                viewer.scope(Customer.shop_id), Customer.id == customer_id
            )
        ).first()
        if row is None:
            raise NotFound(f"customer {customer_id}")
        changed = [
            name
            for name, old, new in (
                ("name", row.name, edit.name),
                ("tags", row.tags, edit.tags),
                ("notes", row.notes, edit.notes),
            )
            if old != new
        ]
        if not changed:
            return False
        conn.execute(
            sa.update(Customer)
            .where(Customer.id == customer_id)
            .values(name=edit.name, tags=edit.tags, notes=edit.notes)
        )
        audit(conn, viewer, "customer_updated", f"customer:{customer_id}", now, {"fields": changed})
        announce(viewer.shop_id, {"type": "customer", "customer_id": customer_id})
        return True

    return unit


def reveal_phone(viewer: Viewer, customer_id: int, now: datetime) -> Unit[str | None]:
    """The customer's phone (E.164), read and audit-logged in one transaction."""

    def unit(conn: Connection) -> str | None:
        exists = conn.execute(
            sa.select(Customer.id).where(viewer.scope(Customer.shop_id), Customer.id == customer_id)
        ).scalar()
        if exists is None:
            raise NotFound(f"customer {customer_id}")
        phone: str | None = conn.execute(
            sa.select(CustomerIdentity.value)
            .where(
                viewer.scope(CustomerIdentity.shop_id),
                CustomerIdentity.customer_id == customer_id,
                CustomerIdentity.kind == "phone",
            )
            .order_by(CustomerIdentity.id)
            .limit(1)
        ).scalar()
        if phone is not None:
            audit(conn, viewer, "phone_revealed", f"customer:{customer_id}", now)
        return phone

    return unit
