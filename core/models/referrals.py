"""Referrals and the coupons they earn: who brought whom, and what each may redeem.

What moves them lives in `core/referrals.py`; these are the columns.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, Id


class Referral(Base):
    """A new customer brought by an existing one: linked once, rewarded once.

    A customer is referred at most once (the first code they give wins); the rewards go out
    when the referred customer's first job is completed — `rewarded_at` is claimed in the
    same statement, so two completions never reward twice.
    """

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("shop_id", "referred_id"),
        # The year's top referrers, and a referrer's count toward the free inspection.
        Index("ix_referrals_referrer", "shop_id", "referrer_id", "rewarded_at"),
        # The KPI's referral share: new customers by when they were linked.
        Index("ix_referrals_shop_time", "shop_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    referred_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    code: Mapped[str] = mapped_column(String(12))  # the code as given
    source: Mapped[str] = mapped_column(String(20))  # chat | booking | api | import | console
    created_at: Mapped[datetime]
    # When the referred customer's first job was completed and both were rewarded.
    rewarded_at: Mapped[datetime | None]
    reward_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))


class Coupon(Base):
    """A discount a customer holds, redeemed against one job, once.

    Redeeming is one conditional UPDATE (`redeemed_at IS NULL`): two tabs pressing it at
    once redeem it once. A job takes at most one coupon (the unique `redeemed_job_id`).
    """

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("redeemed_job_id"),
        Index("ix_coupons_customer", "shop_id", "customer_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    # referrer | referred | free_inspection | top_referrer | console
    reason: Mapped[str] = mapped_column(String(20))
    percent: Mapped[int] = mapped_column(Integer)  # 100: free (the inspection)
    title: Mapped[str] = mapped_column(
        String(100)
    )  # "추천 감사 10% 할인", as the customer reads it
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]
    redeemed_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    cancelled_at: Mapped[datetime | None]
