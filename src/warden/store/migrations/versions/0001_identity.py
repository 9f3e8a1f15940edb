"""Identity: installation facts, agents, retired SPIFFE IDs, operators, revocations, authorities.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "warden_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("spiffe_id", sa.String(2048), nullable=False, unique=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("selectors", sa.JSON, nullable=False),
        sa.Column("max_svid_ttl_s", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credential_epoch", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
    )
    op.create_table(
        "retired_spiffe_ids",
        sa.Column("spiffe_id", sa.String(2048), primary_key=True),
        sa.Column("retired_at", TS, nullable=False),
        sa.Column("reusable_at", TS, nullable=False),
        sa.Column("last_epoch", sa.Integer, nullable=False),
    )
    op.create_table(
        "operators",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("spiffe_id", sa.String(2048), nullable=False, unique=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credential_epoch", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("created_by", sa.String(2048), nullable=False),
    )
    op.create_table(
        "revoked_credentials",
        sa.Column("credential_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "authorities",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pem", sa.Text, nullable=False),
        sa.Column("key_ref", sa.String(128), nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("not_after", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_authorities_kind_status", "authorities", ["kind", "status"])
    op.create_table(
        "principal_feed",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("credential_id", sa.String(128), nullable=True),
        sa.Column("not_after", TS, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_authorities_kind_status", "authorities")
    for table in (
        "principal_feed",
        "authorities",
        "revoked_credentials",
        "operators",
        "retired_spiffe_ids",
        "agents",
        "warden_meta",
    ):
        op.drop_table(table)
