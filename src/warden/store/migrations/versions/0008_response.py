"""Automated response: containment held on the agent (read by every decision point through
the feed), playbook runs (one per trigger, so enforcement points that see the same event act
once), incidents and approvals.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("containment", sa.JSON, nullable=False, server_default="{}"))
    op.create_table(
        "response_runs",
        sa.Column("run_key", sa.String(128), primary_key=True),
        sa.Column("playbook", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("trigger", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("runner", sa.String(2048), nullable=False),
    )
    op.create_index("ix_response_runs_agent", "response_runs", ["agent", "started_at"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("playbook", sa.String(128), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(2048), nullable=True),
        sa.Column("resolution", sa.Text, nullable=False, server_default=""),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("decisions", sa.JSON, nullable=False),
        sa.Column("factors", sa.JSON, nullable=False),
    )
    op.create_index("ix_incidents_status", "incidents", ["status", "opened_at"])
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),  # request | release
        sa.Column("action", sa.String(256), nullable=False),
        sa.Column("resource", sa.String(2048), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # pending | approved | denied | ...
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(2048), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_approvals_status", "approvals", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_table("incidents")
    op.drop_table("response_runs")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("containment")
