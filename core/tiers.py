"""A customer's tier — bronze, silver, gold — follows their completed jobs; one place.

The tier is derived, never typed in (DESIGN: "Tiers, revisit and referral rates are
derived from completed jobs"): `[shops.tiers]` says from how many completed jobs each
starts, and a customer with none has no tier yet (NULL). It is stored on the customer so
that every list can show it without counting jobs:

- `after_completion`, inside `core.jobs.booking.complete`'s unit, moves the tier of the
  one customer whose job was just done, and plans the thanks of a customer who has just
  reached gold — once: `customers.gold_thanked_at` is claimed in the same statement;
- `recompute`, set-based, for customers whose completed jobs arrived another way (an
  import, the demo's seed) or for a whole shop whose thresholds changed (at start-up).
  It thanks no one: a customer who was gold before dangol knew them has not just reached it.

Completion is final (a done job is never cancelled), so a tier only ever rises — except
when the owner raises the thresholds, and then a customer thanked once is not thanked again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from core.config import TIERS, ShopConfig, TiersConfig
from core.jobs.steps import PlannedStep
from core.models import Customer, Job

CUSTOMERS = cast(sa.Table, Customer.__table__)
JOBS = cast(sa.Table, Job.__table__)

NAMES = {"gold": "골드", "silver": "실버", "bronze": "브론즈"}
GOLD_THANKS = "gold_thanks"  # the journey step, and its key (one per job, claimed per customer)


def tier_for(done: int, tiers: TiersConfig) -> str | None:
    """The tier of a customer with `done` completed jobs (None: not a customer yet)."""
    return next((t for t in TIERS if done >= tiers.threshold(t)), None)


def name(tier: str | None) -> str:
    """골드 / 실버 / 브론즈, or "" without a tier."""
    return NAMES.get(tier or "", "")


def _tier_case(done: ColumnElement[int], tiers: TiersConfig) -> ColumnElement[str | None]:
    """`tier_for` in SQL, for many customers in one statement."""
    whens = [(done >= tiers.threshold(t), sa.literal(t, sa.String(10))) for t in TIERS]
    return sa.case(*whens, else_=sa.null())


def _done_count(shop_id: int) -> ColumnElement[int]:
    return (
        sa.select(sa.func.count())
        .select_from(JOBS)
        .where(
            JOBS.c.shop_id == shop_id,
            JOBS.c.customer_id == CUSTOMERS.c.id,
            JOBS.c.status == "done",
        )
        .scalar_subquery()
    )


def recompute(
    conn: Connection,
    shop_id: int,
    tiers: TiersConfig,
    customer_ids: Iterable[int] | None = None,
) -> int:
    """Set the tier of these customers (all the shop's when None) from their completed jobs,
    in one statement; rows already right are not written. Returns how many changed."""
    tier = _tier_case(_done_count(shop_id), tiers)
    where = [CUSTOMERS.c.shop_id == shop_id, CUSTOMERS.c.tier.is_distinct_from(tier)]
    if customer_ids is not None:
        ids = list(customer_ids)
        if not ids:
            return 0
        where.append(CUSTOMERS.c.id.in_(ids))
    return conn.execute(sa.update(CUSTOMERS).where(*where).values(tier=tier)).rowcount


def after_completion(
    conn: Connection, shop: ShopConfig, shop_id: int, customer_id: int, now: datetime
) -> list[PlannedStep]:
    """A job of this customer was just done (in this transaction): their new tier; the
    gold thanks to plan on that job when they have just reached gold, the first time."""
    before = conn.execute(
        sa.select(CUSTOMERS.c.tier).where(
            CUSTOMERS.c.id == customer_id, CUSTOMERS.c.shop_id == shop_id
        )
    ).scalar_one()
    done = conn.execute(
        sa.select(sa.func.count())
        .select_from(JOBS)
        .where(
            JOBS.c.shop_id == shop_id,
            JOBS.c.customer_id == customer_id,
            JOBS.c.status == "done",
        )
    ).scalar_one()
    tier = tier_for(done, shop.tiers)
    if tier != before:
        conn.execute(sa.update(CUSTOMERS).where(CUSTOMERS.c.id == customer_id).values(tier=tier))
    if tier != "gold" or before == "gold":
        return []
    # Claimed here, not only by the step's key: the key is the job's, and gold is reached
    # once per customer. Two completions at once: one UPDATE finds the column still empty.
    claimed = conn.execute(
        sa.update(CUSTOMERS)
        .where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.gold_thanked_at.is_(None))
        .values(gold_thanked_at=now)
    ).rowcount
    if not claimed:
        return []
    return [PlannedStep(GOLD_THANKS, GOLD_THANKS, now, {"done": done})]


def tiers_in_effect(tiers: TiersConfig) -> list[tuple[str, str, int, str]]:
    """(tier, 이름, from how many completed jobs, benefit), highest first: what the console
    explains beside a badge."""
    return [(t, NAMES[t], tiers.threshold(t), tiers.benefit(t)) for t in TIERS]


def recompute_shops(
    shops: Iterable[tuple[int, TiersConfig]],
) -> Callable[[Connection], int]:
    """A unit for start-up: every customer's tier with their shop's thresholds as the config
    now writes them (one statement per shop; nothing written when nothing changed)."""

    def unit(conn: Connection) -> int:
        return sum(recompute(conn, shop_id, tiers) for shop_id, tiers in shops)

    return unit
