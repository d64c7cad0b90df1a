"""Record the model version that answered each prediction.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: the rows stored before versions existed have none.
    op.add_column("predictions", sa.Column("model_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # batch_alter_table: SQLite drops a column by copying the table, as Alembic does for it.
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("model_version")
