"""`[shops.tiers]`: how many completed jobs make a customer bronze, silver or gold, and
what each tier is promised (the owner's words; templates and the console show them).

The rule that turns a count into a tier lives in core/tiers.py; this is only its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from core.config.errors import problem
from core.config.values import Text, whole

TIERS = ("gold", "silver", "bronze")  # highest first


@dataclass(frozen=True)
class TiersConfig:
    """Completed jobs from which each tier starts; a customer with fewer than `bronze`
    has no tier yet."""

    gold: Annotated[int, whole(1)] = 5
    silver: Annotated[int, whole(1)] = 3
    bronze: Annotated[int, whole(1)] = 1
    gold_benefit: Text = "우선 예약 + 특별 할인"
    silver_benefit: Text = "정기 점검"
    bronze_benefit: Text = "추가 서비스 10% 할인"

    def threshold(self, tier: str) -> int:
        return int(getattr(self, tier))

    def benefit(self, tier: str | None) -> str:
        return str(getattr(self, f"{tier}_benefit")).strip() if tier in TIERS else ""


def tiers_in_order(tiers: TiersConfig) -> TiersConfig:
    """gold > silver > bronze ≥ 1: each tier asks for more completed jobs than the one below."""
    if not tiers.gold > tiers.silver > tiers.bronze >= 1:
        raise problem(
            "gold > silver > bronze ≥ 1 is needed (completed jobs from which each tier "
            f"starts), got gold {tiers.gold}, silver {tiers.silver}, bronze {tiers.bronze}"
        )
    return tiers
