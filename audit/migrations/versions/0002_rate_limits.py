"""Rate-limit state shared by every process of a deployment.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("arrival", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
