"""MCP: sessions bound to the identity that opened them, pinned tool definitions, and the
server requests an agent may answer.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mcp_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("server", sa.String(2048), nullable=False),
        sa.Column("spiffe_id", sa.String(2048), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_mcp_sessions_spiffe_id", "mcp_sessions", ["spiffe_id"])
    op.create_table(
        "mcp_tool_pins",
        sa.Column("server", sa.String(2048), primary_key=True),
        sa.Column("tool", sa.String(128), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("pinned_at", TS, nullable=False),
        sa.Column("pinned_by", sa.String(2048), nullable=False),
        sa.Column("pending_digest", sa.String(64), nullable=True),
        sa.Column("pending_definition", sa.JSON, nullable=True),
        sa.Column("pending_since", TS, nullable=True),
    )
    op.create_table(
        "mcp_server_requests",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(256), primary_key=True),
        sa.Column("expires_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mcp_server_requests")
    op.drop_table("mcp_tool_pins")
    op.drop_index("ix_mcp_sessions_spiffe_id", "mcp_sessions")
    op.drop_table("mcp_sessions")
