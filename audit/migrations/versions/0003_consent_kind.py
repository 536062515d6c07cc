"""A consent's kind: ``verified-video`` or ``attested``; every consent recorded before is ``attested``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Before this column, no grant checked its evidence: an old row is the operator's word, whatever file it names.
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default="attested"))


def downgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("kind")
