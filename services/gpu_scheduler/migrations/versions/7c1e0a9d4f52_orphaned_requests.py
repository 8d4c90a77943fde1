"""Orphaned requests keep their place: ``queued_at`` and ``orphaned_at`` on gpu_requests.

A request whose spawn died with the hub is kept (``orphaned_at``) for ``gpus.orphan_grace``
seconds; asked again within it, the new request keeps the first ask's time (``queued_at``).
Both are null on every row of the previous revision, which means what it meant there.

Revision ID: 7c1e0a9d4f52
Revises: 492626b3876f
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e0a9d4f52"
down_revision: str | None = "492626b3876f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gpu_requests") as batch:
        batch.add_column(sa.Column("queued_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("orphaned_at", sa.Float(), nullable=True))


def downgrade() -> None:
    # an orphan is not a waiting request in the previous revision: its place is given up
    op.execute(sa.text("DELETE FROM gpu_requests WHERE orphaned_at IS NOT NULL"))
    with op.batch_alter_table("gpu_requests") as batch:
        batch.drop_column("orphaned_at")
        batch.drop_column("queued_at")
