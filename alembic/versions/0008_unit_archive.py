"""the unit archive: archive register, loans, disposals; WORM and tombstones on blobs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "disposals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.Uuid(), nullable=False),
        sa.Column("proposed_at", TZ, nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=False),
        sa.Column("consent_reference", sa.String(length=200), nullable=True),
        sa.Column("consent_date", sa.Date(), nullable=True),
        sa.Column("executed_at", TZ, nullable=True),
        sa.Column("instance_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_disposals_unit_id_units"),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["users.id"], name="fk_disposals_proposed_by_users"
        ),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name="fk_disposals_decided_by_users"),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["process_instances.id"],
            name="fk_disposals_instance_id_process_instances",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_disposals"),
        sa.UniqueConstraint("unit_id", "year", "seq", name="uq_disposals_unit_id_year_seq"),
    )
    op.create_index("ix_disposals_unit_id", "disposals", ["unit_id"])
    op.create_table(
        "archive_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=10), nullable=False),
        sa.Column("retention_until", sa.Date(), nullable=True),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("transferred_by", sa.Uuid(), nullable=False),
        sa.Column("transferred_at", TZ, nullable=False),
        sa.Column("disposal_id", sa.Uuid(), nullable=True),
        sa.Column("disposed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_archive_entries_unit_id_units"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_archive_entries_case_id_cases"),
        sa.ForeignKeyConstraint(
            ["transferred_by"], ["users.id"], name="fk_archive_entries_transferred_by_users"
        ),
        sa.ForeignKeyConstraint(
            ["disposal_id"], ["disposals.id"], name="fk_archive_entries_disposal_id_disposals"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_archive_entries"),
        sa.UniqueConstraint("case_id", name="uq_archive_entries_case_id"),
        sa.UniqueConstraint("unit_id", "year", "seq", name="uq_archive_entries_unit_id_year_seq"),
    )
    op.create_index("ix_archive_entries_unit_id", "archive_entries", ["unit_id"])
    op.create_table(
        "archive_loans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("borrower_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("lent_by", sa.Uuid(), nullable=False),
        sa.Column("lent_at", TZ, nullable=False),
        sa.Column("returned_at", TZ, nullable=True),
        sa.Column("returned_to", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["archive_entries.id"], name="fk_archive_loans_entry_id_archive_entries"
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_archive_loans_unit_id_units"),
        sa.ForeignKeyConstraint(
            ["borrower_id"], ["users.id"], name="fk_archive_loans_borrower_id_users"
        ),
        sa.ForeignKeyConstraint(["lent_by"], ["users.id"], name="fk_archive_loans_lent_by_users"),
        sa.ForeignKeyConstraint(
            ["returned_to"], ["users.id"], name="fk_archive_loans_returned_to_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_archive_loans"),
    )
    op.create_index("ix_archive_loans_entry_id", "archive_loans", ["entry_id"])
    op.create_index("ix_archive_loans_unit_id", "archive_loans", ["unit_id"])
    op.create_table(
        "disposal_items",
        sa.Column("disposal_id", sa.Uuid(), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["disposal_id"], ["disposals.id"], name="fk_disposal_items_disposal_id_disposals"
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["archive_entries.id"], name="fk_disposal_items_entry_id_archive_entries"
        ),
        sa.PrimaryKeyConstraint("disposal_id", "entry_id", name="pk_disposal_items"),
    )
    op.create_index("ix_disposal_items_entry_id", "disposal_items", ["entry_id"])
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", TZ, nullable=True))
        batch_op.add_column(sa.Column("disposed_at", TZ, nullable=True))
    # a person's actions, exported for inspections
    op.create_index("ix_audit_entries_actor_id", "audit_entries", ["actor_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_actor_id", "audit_entries")
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_column("disposed_at")
        batch_op.drop_column("locked_until")
    op.drop_table("disposal_items")
    op.drop_table("archive_loans")
    op.drop_table("archive_entries")
    op.drop_table("disposals")
