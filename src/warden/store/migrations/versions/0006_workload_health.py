"""Workload health: the latest vulnerability report summary of each agent.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workload_health",
        sa.Column("agent_name", sa.String(63), primary_key=True),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("cleared", sa.JSON, nullable=False),
        sa.Column("digests", sa.JSON, nullable=False),
        sa.Column("report_sha256", sa.String(64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_by", sa.String(2048), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workload_health")
