"""What the console changes about jobs: the units of `core.jobs`, run as the viewer — their
shop, their name in the audit log — and the customer a phone booking adds.

`core.jobs` checks each move against the job's status and audits it; these only bind the
viewer and add what the console alone does (a new customer, a photo it uploaded).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.changes import Refused, audit
from bot.console.jobs_forms import BookingInput, NewCustomer
from bot.console.viewer import Viewer
from bot.live import announce
from core import jobs
from core.config import ShopConfig
from core.consents import ConsentChange, record_consents
from core.db import Unit
from core.jobs import Booking, JobError
from core.models import Conversation, Customer, CustomerIdentity, Photo

# Where a consent given on the phone to the owner is recorded as coming from.
PHONE_BOOKING_SOURCE = "console:phone-booking"


def add_customer(viewer: Viewer, new: NewCustomer, now: datetime) -> Unit[int]:
    """A customer who phoned: their name and number, their marketing consent when they gave
    it (recorded with its source), and an SMS conversation, resolved, where the journey's
    messages to them and any reply will be. Refused("phone_taken", other=id) when the
    number is a customer's already."""

    def unit(conn: Connection) -> int:
        other = conn.execute(
            sa.select(CustomerIdentity.customer_id).where(
                viewer.scope(CustomerIdentity.shop_id),
                CustomerIdentity.kind == "phone",
                CustomerIdentity.value == new.phone,
            )
        ).scalar()
        if other is not None:
            raise Refused("phone_taken", other=int(other))
        customer_id = int(
            conn.execute(
                sa.insert(Customer)
                .values(
                    shop_id=viewer.shop_id,
                    name=new.name,
                    tags=[],
                    notes="",
                    created_at=now,
                )
                .returning(Customer.id)
            ).scalar_one()
        )
        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=viewer.shop_id,
                customer_id=customer_id,
                kind="phone",
                value=new.phone,
                created_at=now,
            )
        )
        # A job needs a conversation for its messages (and the customer's answers) to land
        # in. Resolved: nobody is waiting, so it stays out of the inbox until they write.
        conn.execute(
            sa.insert(Conversation).values(
                shop_id=viewer.shop_id,
                customer_id=customer_id,
                channel="sms",
                status="resolved",
                complaint=False,
                unread_count=0,
                last_message_at=now,
                created_at=now,
                resolved_at=now,
            )
        )
        audit(conn, viewer, "customer_created", f"customer:{customer_id}", now, {"via": "console"})
        if new.marketing:
            record_consents(
                conn,
                [
                    ConsentChange(
                        shop_id=viewer.shop_id,
                        customer_id=customer_id,
                        scope="marketing",
                        granted=True,
                        source=PHONE_BOOKING_SOURCE,
                        actor=viewer.actor,
                        at=now,
                    )
                ],
            )
        announce(viewer.shop_id, {"type": "customer", "customer_id": customer_id})
        return customer_id

    return unit


def book(
    viewer: Viewer,
    shop: ShopConfig,
    customer_id: int,
    conversation_id: int | None,
    booked: BookingInput,
    now: datetime,
) -> Unit[int]:
    """core.jobs.book as the viewer; the job's id. Raises JobError (at once or in the unit)."""
    booking = Booking(
        shop_id=viewer.shop_id,
        customer_id=customer_id,
        conversation_id=conversation_id,
        service=booked.service,
        starts_at=booked.starts_at,
        ends_at=booked.ends_at,
        address=booked.address,
        price_krw=booked.price_krw,
        notes=booked.notes,
        source="console",
    )
    return jobs.book(shop, booking, viewer.actor, now)


def depart(viewer: Viewer, job_id: int, eta: datetime, now: datetime) -> Unit[None]:
    return jobs.depart(viewer.shop_id, job_id, eta, viewer.actor, now)


def start(viewer: Viewer, job_id: int, now: datetime) -> Unit[None]:
    return jobs.start(viewer.shop_id, job_id, viewer.actor, now)


def complete(viewer: Viewer, shop: ShopConfig, job_id: int, now: datetime) -> Unit[None]:
    return jobs.complete(shop, viewer.shop_id, job_id, viewer.actor, now)


def reschedule(
    viewer: Viewer,
    shop: ShopConfig,
    job_id: int,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> Unit[int]:
    return jobs.reschedule(shop, viewer.shop_id, job_id, starts_at, ends_at, viewer.actor, now)


def end_unfinished(
    viewer: Viewer, job_id: int, status: str, reason: str, now: datetime
) -> Unit[None]:
    """취소 ("cancelled") or 노쇼 ("no_show")."""
    return jobs.end_unfinished(viewer.shop_id, job_id, status, reason, viewer.actor, now)


def attach_photo(
    viewer: Viewer, job_id: int, photo_id: int, phase: str, caption: str, now: datetime
) -> Unit[None]:
    """A photo the console uploaded becomes the job's and goes to the customer. Only one
    a console user uploaded: a customer's own photo is never sent back to them as ours."""
    attach = jobs.attach_photo(viewer.shop_id, job_id, photo_id, phase, caption, viewer.actor, now)

    def unit(conn: Connection) -> None:
        ours = conn.execute(
            sa.select(Photo.id).where(
                viewer.scope(Photo.shop_id),
                Photo.id == photo_id,
                Photo.uploaded_by.is_not(None),
            )
        ).scalar()
        if ours is None:
            raise JobError("사진을 찾을 수 없어요. 다시 올려 주세요")
        attach(conn)

    return unit
