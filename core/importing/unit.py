"""The import itself: one unit, so one transaction — all of the plan or none of it.

Run again with the same file it adds nothing: a phone number already a customer of the shop
is that customer (a missing name is filled in, a name the shop has is kept); a past job
already there — same customer, service and day, whatever its source — is not added again;
a consent already recorded with the same answer and date is not recorded again.

Past jobs are history: rows with status 'done' and source 'import', at the day's start in
the shop's time zone (the file has no time), with no journey steps — nothing is sent for
them. Consents go through `core.consents.record_consents` (the row and its audit entry),
sourced ``import:<file name>`` and dated the day the file says. Set-based: a handful of
statements per thousand rows, so a 10,000-row list is a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import TiersConfig
from core.config.services import ServiceConfig
from core.consents import ConsentChange, record_consents
from core.db import Unit
from core.importing.validating import Plan
from core.models import AuditEntry, Consent, Customer, CustomerIdentity, Job
from core.tiers import recompute

CUSTOMERS = cast(sa.Table, Customer.__table__)
IDENTITIES = cast(sa.Table, CustomerIdentity.__table__)
JOBS = cast(sa.Table, Job.__table__)
CONSENTS = cast(sa.Table, Consent.__table__)
AUDIT = cast(sa.Table, AuditEntry.__table__)

CHUNK = 1000  # ids and numbers bound per statement: well under both databases' limits
SOURCE_MAX = 40  # consents.source

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What an import did (or, from `assess`, would do)."""

    customers_new: int
    customers_matched: int
    jobs_added: int
    jobs_existing: int
    consents_recorded: int
    rows_refused: int

    def as_detail(self) -> dict[str, int]:
        return {
            "customers_new": self.customers_new,
            "customers_matched": self.customers_matched,
            "jobs_added": self.jobs_added,
            "jobs_existing": self.jobs_existing,
            "consents_recorded": self.consents_recorded,
            "rows_refused": self.rows_refused,
        }


def consent_source(file_name: str) -> str:
    return f"import:{file_name}"[:SOURCE_MAX]


def local_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _known(conn: Connection, shop_id: int, phones: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in _chunks(phones):
        rows = conn.execute(
            sa.select(IDENTITIES.c.value, IDENTITIES.c.customer_id).where(
                IDENTITIES.c.shop_id == shop_id,
                IDENTITIES.c.kind == "phone",
                IDENTITIES.c.value.in_(part),
            )
        )
        found.update({r.value: int(r.customer_id) for r in rows})
    return found


def _jobs_there(
    conn: Connection, shop_id: int, customer_ids: Sequence[int], tz: tzinfo
) -> set[tuple[int, str, date]]:
    """(customer, service, local day) of every job the matched customers already have."""
    there: set[tuple[int, str, date]] = set()
    for part in _chunks(customer_ids):
        rows = conn.execute(
            sa.select(JOBS.c.customer_id, JOBS.c.service, JOBS.c.starts_at).where(
                JOBS.c.shop_id == shop_id, JOBS.c.customer_id.in_(part)
            )
        )
        for r in rows:
            starts = r.starts_at if r.starts_at.tzinfo else r.starts_at.replace(tzinfo=UTC)
            there.add((int(r.customer_id), r.service, starts.astimezone(tz).date()))
    return there


def _consents_there(
    conn: Connection, shop_id: int, customer_ids: Sequence[int]
) -> set[tuple[int, bool, datetime]]:
    there: set[tuple[int, bool, datetime]] = set()
    for part in _chunks(customer_ids):
        rows = conn.execute(
            sa.select(CONSENTS.c.customer_id, CONSENTS.c.granted, CONSENTS.c.created_at).where(
                CONSENTS.c.shop_id == shop_id,
                CONSENTS.c.scope == "marketing",
                CONSENTS.c.customer_id.in_(part),
            )
        )
        for r in rows:
            at = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
            there.add((int(r.customer_id), bool(r.granted), at.astimezone(UTC)))
    return there


@dataclass
class _Work:
    """The plan against the database as it is: who is new, which jobs and consents to add."""

    known: dict[str, int]
    new_people: list[int]  # indexes into plan.people
    jobs: list[tuple[int, int]]  # (person index, job index) to add
    jobs_existing: int
    consents: list[int]  # person indexes whose consent to record


def _work(conn: Connection, shop_id: int, plan: Plan, tz: tzinfo, now: datetime) -> _Work:
    known = _known(conn, shop_id, [p.phone for p in plan.people])
    matched = sorted(set(known.values()))
    jobs_there = _jobs_there(conn, shop_id, matched, tz)
    consents_there = _consents_there(conn, shop_id, matched)
    new_people: list[int] = []
    jobs: list[tuple[int, int]] = []
    consents: list[int] = []
    existing = 0
    for i, person in enumerate(plan.people):
        customer_id = known.get(person.phone)
        if customer_id is None:
            new_people.append(i)
        for j, job in enumerate(person.jobs):
            if customer_id is not None and (customer_id, job.service, job.on) in jobs_there:
                existing += 1
            else:
                jobs.append((i, j))
        c = person.consent
        if c is not None:
            at = local_start(c.on, tz) if c.on else now
            if customer_id is None or (customer_id, c.granted, at) not in consents_there:
                consents.append(i)
    return _Work(known, new_people, jobs, existing, consents)


def assess(conn: Connection, shop_id: int, plan: Plan, tz: tzinfo, now: datetime) -> Outcome:
    """What `import_customers` would do now (the preview's counts); reads only."""
    work = _work(conn, shop_id, plan, tz, now)
    return Outcome(
        customers_new=len(work.new_people),
        customers_matched=len(plan.people) - len(work.new_people),
        jobs_added=len(work.jobs),
        jobs_existing=work.jobs_existing,
        consents_recorded=len(work.consents),
        rows_refused=len(plan.refusals),
    )


def import_customers(
    shop_id: int,
    plan: Plan,
    services: Sequence[ServiceConfig],
    *,
    file_name: str,
    actor: str,
    tz: tzinfo,
    now: datetime,
    tiers: TiersConfig | None = None,
) -> Unit[Outcome]:
    """The unit that writes `plan`; returns its `Outcome`. Raises (and so writes nothing)
    when anything in it fails — a number stored by someone else a moment ago included."""
    names = {s.key: s for s in services}

    def unit(conn: Connection) -> Outcome:
        work = _work(conn, shop_id, plan, tz, now)
        ids = dict(work.known)
        new = [plan.people[i] for i in work.new_people]
        for part in _chunks(new):
            rows = conn.execute(
                sa.insert(CUSTOMERS).returning(CUSTOMERS.c.id, sort_by_parameter_order=True),
                [
                    {
                        "shop_id": shop_id,
                        "name": p.name,
                        "tags": [],
                        "notes": "",
                        "created_at": now,
                    }
                    for p in part
                ],
            ).all()
            made = [int(r.id) for r in rows]
            conn.execute(
                sa.insert(IDENTITIES),
                [
                    {
                        "shop_id": shop_id,
                        "customer_id": cid,
                        "kind": "phone",
                        "value": p.phone,
                        "created_at": now,
                    }
                    for p, cid in zip(part, made, strict=True)
                ],
            )
            ids.update({p.phone: cid for p, cid in zip(part, made, strict=True)})
        # A customer the shop has without a name gets the file's.
        named = [
            {"cid": ids[p.phone], "name": p.name}
            for p in plan.people
            if p.phone in work.known and p.name
        ]
        if named:
            conn.execute(
                sa.update(CUSTOMERS)
                .where(CUSTOMERS.c.id == sa.bindparam("cid"), CUSTOMERS.c.name.is_(None))
                .values(name=sa.bindparam("name")),
                named,
            )
        job_rows = []
        for i, j in work.jobs:
            person = plan.people[i]
            job = person.jobs[j]
            service = names[job.service]
            starts = local_start(job.on, tz)
            job_rows.append(
                {
                    "shop_id": shop_id,
                    "customer_id": ids[person.phone],
                    "service": service.key,
                    "service_name": service.name,
                    "address": "",
                    "starts_at": starts,
                    "ends_at": starts + timedelta(minutes=service.duration_minutes),
                    "status": "done",
                    "notes": f"가져온 이력: {file_name} {job.row}행",
                    "source": "import",
                    "revision": 1,
                    "booked_at": starts,
                    "done_at": starts,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for rows_part in _chunks(job_rows):
            conn.execute(sa.insert(JOBS), list(rows_part))
        changes = []
        for i in work.consents:
            person = plan.people[i]
            c = person.consent
            assert c is not None
            source = consent_source(file_name)
            changes.append(
                ConsentChange(
                    shop_id=shop_id,
                    customer_id=ids[person.phone],
                    scope="marketing",
                    granted=c.granted,
                    source=source,
                    actor=actor,
                    at=local_start(c.on, tz) if c.on else now,
                    detail={"scope": "marketing", "source": source, "how": c.how, "row": c.row},
                )
            )
        for changes_part in _chunks(changes):
            record_consents(conn, changes_part)
        # The history came in: its customers' tiers follow it (never a gold thanks — they
        # did not just reach gold).
        recompute(conn, shop_id, tiers or TiersConfig(), [ids[p.phone] for p in plan.people])
        outcome = Outcome(
            customers_new=len(new),
            customers_matched=len(plan.people) - len(new),
            jobs_added=len(job_rows),
            jobs_existing=work.jobs_existing,
            consents_recorded=len(changes),
            rows_refused=len(plan.refusals),
        )
        conn.execute(
            sa.insert(AUDIT).values(
                shop_id=shop_id,
                actor=actor[:60],
                action="customers_imported",
                subject=f"shop:{shop_id}",
                detail={"file": file_name, "rows": plan.rows, **outcome.as_detail()},
                created_at=now,
            )
        )
        return outcome

    return unit
