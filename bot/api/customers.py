"""The customer a pushed job is for: found by phone number within the shop, or added —
with their marketing consent recorded only when the caller says they gave it, and where.

Runs inside the booking's unit, so a booking that fails adds no customer and no consent.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bot.api.models import CustomerIn
from core.consents import ConsentChange, record_consents
from core.models import AuditEntry, Customer, CustomerIdentity

CUSTOMERS = cast(sa.Table, Customer.__table__)
IDENTITIES = cast(sa.Table, CustomerIdentity.__table__)


def _by_phone(conn: Connection, shop_id: int, phone: str) -> int | None:
    found = conn.execute(
        sa.select(IDENTITIES.c.customer_id).where(
            IDENTITIES.c.shop_id == shop_id,
            IDENTITIES.c.kind == "phone",
            IDENTITIES.c.value == phone,
        )
    ).scalar()
    return None if found is None else int(found)


def customer_for(conn: Connection, shop_id: int, who: CustomerIn, actor: str, now: datetime) -> int:
    """The customer with this phone number (E.164) in the shop, or a new one; their id.

    A known customer keeps the name the shop has for them (the owner may have corrected
    it); one without a name gets the caller's.
    """
    customer_id = _by_phone(conn, shop_id, who.phone)
    if customer_id is None:
        customer_id = _add(conn, shop_id, who, actor, now)
    else:
        conn.execute(
            sa.update(CUSTOMERS)
            .where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.name.is_(None))
            .values(name=who.name)
        )
    consent = who.marketing_consent
    if consent is not None:
        scopes = ("marketing", "night") if consent.night else ("marketing",)
        record_consents(
            conn,
            [
                ConsentChange(
                    shop_id=shop_id,
                    customer_id=customer_id,
                    scope=scope,
                    granted=True,
                    source=f"api:{consent.source}",
                    actor=actor,
                    at=now,
                )
                for scope in scopes
            ],
        )
    return customer_id


def _add(conn: Connection, shop_id: int, who: CustomerIn, actor: str, now: datetime) -> int:
    customer_id = int(
        conn.execute(
            sa.insert(CUSTOMERS)
            .values(shop_id=shop_id, name=who.name, tags=[], notes="", created_at=now)
            .returning(CUSTOMERS.c.id)
        ).scalar_one()
    )
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stored = conn.execute(
        insert(IDENTITIES)
        .values(
            shop_id=shop_id, customer_id=customer_id, kind="phone", value=who.phone, created_at=now
        )
        .on_conflict_do_nothing(index_elements=["shop_id", "kind", "value"])
        .returning(IDENTITIES.c.id)
    ).first()
    if stored is None:
        # Another process stored this number a moment ago: theirs is the customer.
        conn.execute(sa.delete(CUSTOMERS).where(CUSTOMERS.c.id == customer_id))
        found = _by_phone(conn, shop_id, who.phone)
        assert found is not None
        return found
    conn.execute(
        sa.insert(AuditEntry).values(
            shop_id=shop_id,
            actor=actor[:60],
            action="customer_added",
            subject=f"customer:{customer_id}",
            detail={"source": "api"},
            created_at=now,
        )
    )
    return customer_id
