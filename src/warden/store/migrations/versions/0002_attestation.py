"""Attestation: process bindings, container evidence, join tokens, attestation events.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "process_bindings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agent_name", sa.String(63), nullable=False),
        sa.Column("boot_id", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(2048), nullable=False),
        sa.Column("ended_at", TS, nullable=True),
    )
    op.create_index(
        "ix_process_bindings_process", "process_bindings", ["boot_id", "pid", "start_time"]
    )
    op.create_table(
        "agent_evidence",
        sa.Column("agent_name", sa.String(63), primary_key=True),
        sa.Column("image_digest", sa.String(128), nullable=False),
        sa.Column("sbom_digest", sa.String(128), nullable=False),
        sa.Column("sbom", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "join_tokens",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("agent_name", sa.String(63), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(2048), nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_table(
        "attestation_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("agent_name", sa.String(63), nullable=True),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("attestation_events", "join_tokens", "agent_evidence"):
        op.drop_table(table)
    op.drop_index("ix_process_bindings_process", "process_bindings")
    op.drop_table("process_bindings")
