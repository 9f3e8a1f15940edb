"""SCIM 2.0: what a provisioning client says of an agent beyond Warden's own attributes
(externalId, displayName, description), the groups it manages, and its bearer tokens (kept
as SHA-256 digests only).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("external_id", sa.String(256), nullable=True))
        batch.add_column(sa.Column("display_name", sa.String(256), nullable=True))
        batch.add_column(sa.Column("description", sa.Text, nullable=True))
    op.create_table(
        "scim_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("external_id", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "scim_tokens",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(2048), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("scim_tokens")
    op.drop_table("scim_groups")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("description")
        batch.drop_column("display_name")
        batch.drop_column("external_id")
