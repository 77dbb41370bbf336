"""indexes found by the 1M-case scale run (issue 9): the case list by unit and year, and the
sender autocomplete by unit and name prefix

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 07:10:00

At 1M cases (167k per unit) the case list (spis spraw: unit, year, optionally JRWA class,
ordered by class and number) read every case of the unit through `ix_cases_unit_id` and sorted
them: 900 ms. The sender autocomplete (`ILIKE 'prefix%'` within a unit) read every incoming item
of the unit: 1.2 s. The first index serves the case list in its order; the second, with the
query now `lower(sender_name) LIKE lower(prefix) || '%'`, a prefix range of one unit.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_cases_unit_id_year_jrwa_symbol_seq", "cases", ["unit_id", "year", "jrwa_symbol", "seq"]
    )
    if op.get_bind().dialect.name == "postgresql":
        # text_pattern_ops: LIKE 'prefix%' uses the index whatever the database's collation.
        op.execute(
            "CREATE INDEX ix_incoming_items_unit_id_sender_lower "
            "ON incoming_items (unit_id, lower(sender_name) text_pattern_ops)"
        )
    else:
        op.execute(
            "CREATE INDEX ix_incoming_items_unit_id_sender_lower "
            "ON incoming_items (unit_id, lower(sender_name))"
        )


def downgrade() -> None:
    op.drop_index("ix_incoming_items_unit_id_sender_lower", table_name="incoming_items")
    op.drop_index("ix_cases_unit_id_year_jrwa_symbol_seq", table_name="cases")
