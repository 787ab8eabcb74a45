"""calibrations: a board's twin calibrated against the real board (``mcuprof calibrate``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)


def upgrade() -> None:
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("board", NAME, nullable=False),
        sa.Column("device", NAME, nullable=False),
        sa.Column("kernels", sa.String(length=8), nullable=False),
        sa.Column("firmware_id", NAME, nullable=True),
        sa.Column("factor", sa.Double(), nullable=False),
        sa.Column("error_pct", sa.Double(), nullable=False),
        sa.Column("raw_error_pct", sa.Double(), nullable=False),
        sa.Column("held_out", sa.Boolean(), nullable=False),
        sa.Column("op_errors", sa.JSON(), nullable=False),
        sa.Column("networks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
    )
    op.create_index(op.f("ix_calibrations_board"), "calibrations", ["board"])


def downgrade() -> None:
    op.drop_index(op.f("ix_calibrations_board"), table_name="calibrations")
    op.drop_table("calibrations")
