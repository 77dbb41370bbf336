"""citizen e-services: submissions, their timeline, PIN throttling

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "eservice_submissions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tracking_code", sa.String(length=20), nullable=False),
        sa.Column("pin_hash", sa.String(length=200), nullable=False),
        sa.Column("service_code", sa.String(length=80), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("incoming_item_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("applicant_email", sa.String(length=254), nullable=True),
        sa.Column("form_sha256", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_note", sa.Text(), nullable=True),
        sa.Column("deadline", TZ, nullable=True),
        sa.Column("receipt_document_id", sa.Uuid(), nullable=True),
        sa.Column("decision_document_id", sa.Uuid(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("submitted_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name="fk_eservice_submissions_unit_id_units"
        ),
        sa.ForeignKeyConstraint(
            ["incoming_item_id"],
            ["incoming_items.id"],
            name="fk_eservice_submissions_incoming_item_id_incoming_items",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name="fk_eservice_submissions_case_id_cases"
        ),
        sa.ForeignKeyConstraint(
            ["receipt_document_id"],
            ["documents.id"],
            name="fk_eservice_submissions_receipt_document_id_documents",
        ),
        sa.ForeignKeyConstraint(
            ["decision_document_id"],
            ["documents.id"],
            name="fk_eservice_submissions_decision_document_id_documents",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_eservice_submissions"),
        sa.UniqueConstraint("tracking_code", name="uq_eservice_submissions_tracking_code"),
        sa.UniqueConstraint("case_id", name="uq_eservice_submissions_case_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_eservice_submissions_idempotency_key"),
    )
    op.create_index("ix_eservice_submissions_unit_id", "eservice_submissions", ["unit_id"])
    op.create_table(
        "eservice_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("emailed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["eservice_submissions.id"],
            name="fk_eservice_events_submission_id_eservice_submissions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_eservice_events"),
    )
    op.create_index("ix_eservice_events_submission", "eservice_events", ["submission_id", "at"])
    op.create_table(
        "eservice_access_throttle",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", TZ, nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_eservice_access_throttle"),
        sa.UniqueConstraint("key", name="uq_eservice_access_throttle_key"),
    )


def downgrade() -> None:
    op.drop_table("eservice_access_throttle")
    op.drop_index("ix_eservice_events_submission", table_name="eservice_events")
    op.drop_table("eservice_events")
    op.drop_index("ix_eservice_submissions_unit_id", table_name="eservice_submissions")
    op.drop_table("eservice_submissions")
