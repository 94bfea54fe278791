"""Everything added to the tables since the baseline, up to the first migrations.

A database adopted at the baseline was made by `create_all` of any version up to then: a table,
column or index it already has is skipped (`if_missing`), the rest is added.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 16:02:00.716853
"""

from __future__ import annotations

import sqlalchemy as sa

from shared.database import UtcDateTime
from shared.schema_migrations import if_missing as op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aftercare_escalation_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("escalation_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("contact_name", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("aftercare_escalation_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_aftercare_escalation_steps_escalation_id"), ["escalation_id"], unique=False
        )

    op.create_table(
        "aftercare_escalations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("reference", sa.String(length=8), nullable=False),
        sa.Column("appointment_id", sa.String(length=100), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.Column("paged", sa.Integer(), nullable=False),
        sa.Column("last_paged_at", UtcDateTime(), nullable=False),
        sa.Column("next_due_at", UtcDateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=20), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("aftercare_escalations", schema=None) as batch_op:
        batch_op.create_index("ix_escalations_due", ["status", "next_due_at"], unique=False)

    op.create_table(
        "aftercare_outbox_dead",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("dead_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "aftercare_screenings",
        sa.Column("appointment_id", sa.String(length=100), nullable=False),
        sa.Column("appointment_type", sa.String(length=40), nullable=False),
        sa.Column("practitioner", sa.String(length=200), nullable=False),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("flagged", sa.JSON(), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("first_submitted_at", UtcDateTime(), nullable=False),
        sa.Column("submitted_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    op.create_table(
        "aftercare_upcoming_visits",
        sa.Column("appointment_id", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("locale", sa.String(length=10), nullable=False),
        sa.Column("appointment_type", sa.String(length=40), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("planned_at", UtcDateTime(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("answer", sa.String(length=20), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    with op.batch_alter_table("aftercare_upcoming_visits", schema=None) as batch_op:
        batch_op.create_index("ix_upcoming_visits_phone_starts", ["phone", "starts_at"], unique=False)

    with op.batch_alter_table("aftercare_check_ins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("appointment_type", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("visit_at", UtcDateTime(), nullable=True))
        batch_op.create_index("ix_check_ins_patient_type", ["patient_id", "appointment_type"], unique=False)

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("attempt_started_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("provider_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("provider_error_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("provider_status_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("fallback_recipient", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("fallback_of", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_deliveries_provider_id", ["provider_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_provider_id")
        batch_op.drop_column("fallback_of")
        batch_op.drop_column("fallback_recipient")
        batch_op.drop_column("provider_status_at")
        batch_op.drop_column("provider_error_code")
        batch_op.drop_column("provider_status")
        batch_op.drop_column("attempt_started_at")
        batch_op.drop_column("claim_token")

    with op.batch_alter_table("aftercare_check_ins", schema=None) as batch_op:
        batch_op.drop_index("ix_check_ins_patient_type")
        batch_op.drop_column("visit_at")
        batch_op.drop_column("appointment_type")
        batch_op.drop_column("patient_id")

    with op.batch_alter_table("aftercare_upcoming_visits", schema=None) as batch_op:
        batch_op.drop_index("ix_upcoming_visits_phone_starts")

    op.drop_table("aftercare_upcoming_visits")
    op.drop_table("aftercare_screenings")
    op.drop_table("aftercare_outbox_dead")
    with op.batch_alter_table("aftercare_escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_escalations_due")

    op.drop_table("aftercare_escalations")
    with op.batch_alter_table("aftercare_escalation_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aftercare_escalation_steps_escalation_id"))

    op.drop_table("aftercare_escalation_steps")
