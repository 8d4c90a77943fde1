"""The scheduler's tables as dlhub 0.1.0 created them: requests (and leases) and quotas.

Revision ID: 492626b3876f
Revises:
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "492626b3876f"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gpu_requests",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server", sa.String(255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=False),
        sa.Column("idle_timeout", sa.Float(), nullable=False),
        sa.Column("max_lifetime", sa.Float(), nullable=False),
        sa.Column("devices", sa.Text(), nullable=True),
        sa.Column("granted_at", sa.Float(), nullable=True),
        sa.Column("last_active", sa.Float(), nullable=True),
        sa.Column("borrowed", sa.Boolean(), nullable=False),
        sa.Column("reclaiming", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "gpu_quotas",
        sa.Column("group", sa.String(255), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("group"),
    )


def downgrade() -> None:
    op.drop_table("gpu_quotas")
    op.drop_table("gpu_requests")
