"""internal e-delivery: an outgoing item's signed letter id and its delivery time

`letter_id` is the UUID written into the signed letter (OpisDokumentu's idDokumentu); the
addressee's signed receipt names it, and `delivered_at` is the delivery time the receipt states.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("letter_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_outgoing_items_letter_id", ["letter_id"])


def downgrade() -> None:
    with op.batch_alter_table("outgoing_items", schema=None) as batch_op:
        batch_op.drop_constraint("uq_outgoing_items_letter_id", type_="unique")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("letter_id")
