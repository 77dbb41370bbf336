"""the system user (ezd's own actor as a users row) and documents' signature reports

Rows that name who did something (registered_by, created_by) can then name ezd itself. The row
has no usable password (`!` is no argon2 hash) and is inactive: nobody can log in as it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 03:00:00
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SYSTEM_USER_ID = uuid.UUID(int=0)  # workflow.principal.SYSTEM.user_id

users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("username", sa.String()),
    sa.column("full_name", sa.String()),
    sa.column("email", sa.String()),
    sa.column("password_hash", sa.String()),
    sa.column("active", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature_report", sa.JSON(), nullable=True))
    op.bulk_insert(
        users,
        [
            {
                "id": SYSTEM_USER_ID,
                "username": "ezd-system",
                "full_name": "ezd (system)",
                "email": None,
                "password_hash": "!",
                "active": False,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    op.execute(users.delete().where(users.c.id == SYSTEM_USER_ID))
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("signature_report")
