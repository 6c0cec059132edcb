"""jobs, journey steps, survey answers, API tokens; the outbox row's kind and customer; job photos

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:46:07.396749
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite rebuilds a table to add a foreign key; reflecting it must not load the tables it
# points to (users has an expression index SQLite cannot reflect, a warning).
_NO_FK_TABLES = {"resolve_fks": False}


def upgrade() -> None:

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=60), server_default=sa.text("''"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=12), nullable=False),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_api_tokens_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_api_tokens_shop_id_shops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_shop_id"), ["shop_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("service", sa.String(length=40), nullable=False),
        sa.Column("service_name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("price_krw", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("eta_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("customer_reply", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("on_the_way_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("no_show_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_jobs_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_jobs_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_jobs_shop_id_shops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("shop_id", "external_ref", name=op.f("uq_jobs_shop_id_external_ref")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_customer", ["shop_id", "customer_id", "starts_at"], unique=False
        )
        batch_op.create_index("ix_jobs_shop_start", ["shop_id", "starts_at"], unique=False)

    op.create_table(
        "survey_answers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_survey_answers_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_survey_answers_job_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_survey_answers_shop_id_shops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
        sa.UniqueConstraint("job_id", name=op.f("uq_survey_answers_job_id")),
    )
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_answers_shop_time", ["shop_id", "answered_at"], unique=False
        )

    op.create_table(
        "journey_steps",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("step", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=4), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_journey_steps_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_journey_steps_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_journey_steps_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_journey_steps_outbox_id_outbox")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_journey_steps_shop_id_shops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_steps")),
        sa.UniqueConstraint(
            "shop_id", "job_id", "key", name=op.f("uq_journey_steps_shop_id_job_id_key")
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_journey_steps_token_hash")),
    )
    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.create_index("ix_journey_steps_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_journey_steps_job", ["job_id"], unique=False)

    with op.batch_alter_table("outbox", reflect_kwargs=_NO_FK_TABLES) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=4), server_default=sa.text("'info'"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_customer_id_customers"), "customers", ["customer_id"], ["id"]
        )

    with op.batch_alter_table("photos", reflect_kwargs=_NO_FK_TABLES) as batch_op:
        batch_op.add_column(
            sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("phase", sa.String(length=10), nullable=True))
        batch_op.create_index(batch_op.f("ix_photos_job_id"), ["job_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_photos_job_id_jobs"), "jobs", ["job_id"], ["id"])


def downgrade() -> None:

    with op.batch_alter_table("photos", reflect_kwargs=_NO_FK_TABLES) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_photos_job_id_jobs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_photos_job_id"))
        batch_op.drop_column("phase")
        batch_op.drop_column("job_id")

    with op.batch_alter_table("outbox", reflect_kwargs=_NO_FK_TABLES) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_customer_id_customers"), type_="foreignkey")
        batch_op.drop_column("customer_id")
        batch_op.drop_column("kind")

    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_steps_job")
        batch_op.drop_index("ix_journey_steps_due")

    op.drop_table("journey_steps")
    with op.batch_alter_table("survey_answers", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_answers_shop_time")

    op.drop_table("survey_answers")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_shop_start")
        batch_op.drop_index("ix_jobs_customer")

    op.drop_table("jobs")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_shop_id"))

    op.drop_table("api_tokens")
