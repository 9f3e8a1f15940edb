"""The decision log: entries (canonical JSON, leaf hash, entry MAC) at gapless positions, the
Merkle tree's perfect subtrees, signed checkpoints, and what a witness last saw. It replaces
the plain decision_records table.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("mac", sa.LargeBinary(32), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=True),
        sa.Column("subject", sa.String(2048), nullable=True),
        sa.Column("decision", sa.String(8), nullable=True),
    )
    op.create_index("ix_audit_entries_decision_id", "audit_entries", ["decision_id"], unique=True)
    op.create_index("ix_audit_entries_subject", "audit_entries", ["subject", "seq"])
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.drop_table("decision_records")


def downgrade() -> None:
    op.create_table(
        "decision_records",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("decision_id", sa.String(36), nullable=False, unique=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("enforcement_point", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(2048), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource", sa.String(2048), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_nodes")
    op.drop_index("ix_audit_entries_subject", "audit_entries")
    op.drop_index("ix_audit_entries_decision_id", "audit_entries")
    op.drop_table("audit_entries")
