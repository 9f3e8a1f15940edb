"""Policy: agent groups, work orders, decision records, policy events, shadow flips,
enforcement points.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("groups", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "work_orders",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agent", sa.String(2048), nullable=False),
        sa.Column("ticket", sa.String(128), nullable=False),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("constraints", sa.JSON, nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_by", sa.String(2048), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_work_orders_agent", "work_orders", ["agent", "status"])
    op.create_table(
        "decision_records",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(36), nullable=False, unique=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("enforcement_point", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(2048), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource", sa.String(2048), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.create_table(
        "policy_events",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("revision", sa.String(80), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "shadow_flips",
        sa.Column("id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("active_revision", sa.String(80), nullable=False),
        sa.Column("shadow_revision", sa.String(80), nullable=False),
        sa.Column("active", sa.String(8), nullable=False),
        sa.Column("shadow", sa.String(8), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("shadow_reasons", sa.JSON, nullable=False),
    )
    op.create_table(
        "enforcement_points",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spiffe_id", sa.String(2048), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(2048), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    for table in ("enforcement_points", "shadow_flips", "policy_events", "decision_records"):
        op.drop_table(table)
    op.drop_index("ix_work_orders_agent", "work_orders")
    op.drop_table("work_orders")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("groups")
