"""A job's details — address, price, notes — changed after booking.

None of them moves the job or its journey: the customer was told the time, not the
address or the price, so nothing is re-planned or sent. A finished job's details may still
change (the price actually charged, a note for next time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.jobs.booking import ADDRESS_MAX, NOTES_MAX, PRICE_MAX, JobChanged, JobNotFound
from core.jobs.lifecycle import JobError
from core.models import AuditEntry, Job
from core.writer import after_commit

JOBS = cast(sa.Table, Job.__table__)


class _Keep:
    """The value of a detail left as it is (None means "no price": to be quoted)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


@dataclass(frozen=True)
class Details:
    """The details to change; a field left KEEP stays as it is."""

    address: str | _Keep = KEEP
    price_krw: int | _Keep | None = KEEP
    notes: str | _Keep = KEEP

    def values(self) -> dict[str, str | int | None]:
        changed: dict[str, str | int | None] = {}
        if not isinstance(self.address, _Keep):
            changed["address"] = self.address.strip()
        if not isinstance(self.price_krw, _Keep):
            changed["price_krw"] = self.price_krw
        if not isinstance(self.notes, _Keep):
            changed["notes"] = self.notes.strip()
        return changed


def check_details(details: Details) -> None:
    """The booking's limits, for the details given."""
    price = details.price_krw
    if isinstance(price, int) and not 0 <= price <= PRICE_MAX:
        raise JobError("금액은 0원에서 10억 원 사이로 적어 주세요")
    if isinstance(details.address, str) and len(details.address) > ADDRESS_MAX:
        raise JobError(f"주소는 {ADDRESS_MAX}자까지 적을 수 있어요")
    if isinstance(details.notes, str) and len(details.notes) > NOTES_MAX:
        raise JobError(f"메모는 {NOTES_MAX}자까지 적을 수 있어요")


def change_details(
    shop_id: int, job_id: int, details: Details, actor: str, now: datetime
) -> Callable[[Connection], bool]:
    """A unit: change the job's details. True if anything changed (the same values again
    change nothing and write no audit entry); JobNotFound for another shop's job."""
    check_details(details)
    wanted = details.values()

    def unit(conn: Connection) -> bool:
        row = (
            conn.execute(
                sa.select(JOBS.c.address, JOBS.c.price_krw, JOBS.c.notes).where(
                    JOBS.c.id == job_id, JOBS.c.shop_id == shop_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise JobNotFound(job_id)
        changed = {k: v for k, v in wanted.items() if row[k] != v}
        if not changed:
            return False
        conn.execute(sa.update(JOBS).where(JOBS.c.id == job_id).values(**changed, updated_at=now))
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=shop_id,
                actor=actor[:60],
                action="job_details_changed",
                subject=f"job:{job_id}",
                # Which details, not their values: an address is the customer's.
                detail={"fields": sorted(changed)},
                created_at=now,
            )
        )
        after_commit(JobChanged(shop_id, job_id, "details"))
        return True

    return unit
