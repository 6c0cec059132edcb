"""referrals and coupons; customers.referral_code

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN of a nullable column: no batch rebuild of customers on SQLite.
    op.add_column("customers", sa.Column("referral_code", sa.String(length=12), nullable=True))
    op.create_index(
        "uq_customers_referral_code", "customers", ["shop_id", "referral_code"], unique=True
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "referrer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "referred_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewarded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "reward_job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name="fk_referrals_shop_id_shops"),
        sa.ForeignKeyConstraint(
            ["referrer_id"], ["customers.id"], name="fk_referrals_referrer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["referred_id"], ["customers.id"], name="fk_referrals_referred_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["reward_job_id"], ["jobs.id"], name="fk_referrals_reward_job_id_jobs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_referrals"),
        sa.UniqueConstraint("shop_id", "referred_id", name="uq_referrals_shop_id_referred_id"),
    )
    op.create_index(
        "ix_referrals_referrer", "referrals", ["shop_id", "referrer_id", "rewarded_at"]
    )
    op.create_index("ix_referrals_shop_time", "referrals", ["shop_id", "created_at"])
    op.create_table(
        "coupons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column(
            "referral_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "redeemed_job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name="fk_coupons_shop_id_shops"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_coupons_customer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name="fk_coupons_referral_id_referrals"
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_job_id"], ["jobs.id"], name="fk_coupons_redeemed_job_id_jobs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_coupons"),
        sa.UniqueConstraint("redeemed_job_id", name="uq_coupons_redeemed_job_id"),
    )
    op.create_index("ix_coupons_customer", "coupons", ["shop_id", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_coupons_customer", table_name="coupons")
    op.drop_table("coupons")
    op.drop_index("ix_referrals_shop_time", table_name="referrals")
    op.drop_index("ix_referrals_referrer", table_name="referrals")
    op.drop_table("referrals")
    op.drop_index("uq_customers_referral_code", table_name="customers")
    op.drop_column("customers", "referral_code")
