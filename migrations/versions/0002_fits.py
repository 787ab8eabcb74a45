"""Latency-model fits: fit_partitions (what each partition was last fitted from), fits (every
version of every fit) and fit_measurements (the measurements each fit came from).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)
SHA256 = sa.String(length=64)


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "fit_partitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_class", NAME, nullable=False),
        sa.Column("kernels", sa.String(length=8), nullable=False),
        sa.Column("fingerprint", SHA256, nullable=False),
        sa.Column("n_measurements", sa.Integer(), nullable=False),
        _time("refitted_at"),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fit_partitions")),
        sa.UniqueConstraint("device_class", "kernels",
                            name=op.f("uq_fit_partitions_device_class_kernels")),
    )
    op.create_table(
        "fits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_class", NAME, nullable=False),
        sa.Column("backbone", NAME, nullable=True),
        sa.Column("kernels", sa.String(length=8), nullable=False),
        sa.Column("version", NAME, nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("n_models", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("a_ms_per_op", sa.Double(), nullable=True),
        sa.Column("b_ms", sa.Double(), nullable=True),
        sa.Column("r2", sa.Double(), nullable=False),
        sa.Column("cv_r2", sa.Double(), nullable=False),
        sa.Column("cv_mape", sa.Double(), nullable=False),
        sa.Column("cv_acc10", sa.Double(), nullable=False),
        sa.Column("cv_rmse_ms", sa.Double(), nullable=False),
        sa.Column("coefficients", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.CheckConstraint("kind IN ('ops_line', 'per_layer')", name=op.f("ck_fits_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fits")),
        sa.UniqueConstraint("version", name=op.f("uq_fits_version")),
    )
    op.create_index("ix_fits_device_class_current", "fits", ["device_class", "current"])
    op.create_table(
        "fit_measurements",
        sa.Column("fit_id", sa.Integer(), nullable=False),
        sa.Column("measurement_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["fit_id"], ["fits.id"], ondelete="CASCADE",
                                name=op.f("fk_fit_measurements_fit_id_fits")),
        sa.ForeignKeyConstraint(["measurement_id"], ["measurements.id"], ondelete="CASCADE",
                                name=op.f("fk_fit_measurements_measurement_id_measurements")),
        sa.PrimaryKeyConstraint("fit_id", "measurement_id", name=op.f("pk_fit_measurements")),
    )
    op.create_index(op.f("ix_fit_measurements_measurement_id"), "fit_measurements",
                    ["measurement_id"])


def downgrade() -> None:
    # Indexes go with their tables; the link table first (it references both others).
    for table in ("fit_measurements", "fits", "fit_partitions"):
        op.drop_table(table)
