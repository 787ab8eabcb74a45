"""search runs: a DNAS run (search_runs), its epochs (search_epochs) and the architectures it
proposed, with their predicted and measured costs (search_candidates).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "search_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("space", NAME, nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("budgets", sa.JSON(), nullable=False),
        sa.Column("fit_versions", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", NAME, nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.CheckConstraint("state IN ('running', 'done', 'failed')",
                           name=op.f("ck_search_runs_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_runs")),
    )
    op.create_table(
        "search_epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=True),
        sa.Column("loss", sa.Double(), nullable=True),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("costs", sa.JSON(), nullable=False),
        sa.Column("candidate", sa.JSON(), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(["run_id"], ["search_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_search_epochs_run_id_search_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_epochs")),
        sa.UniqueConstraint("run_id", "round", "epoch",
                            name=op.f("uq_search_epochs_run_id_round_epoch")),
    )
    op.create_table(
        "search_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("arch_id", NAME, nullable=False),
        sa.Column("architecture", sa.JSON(), nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("predicted", sa.JSON(), nullable=False),
        sa.Column("measured", sa.JSON(), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.ForeignKeyConstraint(["run_id"], ["search_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_search_candidates_run_id_search_runs")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="SET NULL",
                                name=op.f("fk_search_candidates_model_id_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_candidates")),
        sa.UniqueConstraint("run_id", "round", "arch_id",
                            name=op.f("uq_search_candidates_run_id_round_arch_id")),
    )
    op.create_index(op.f("ix_search_candidates_model_id"), "search_candidates", ["model_id"])


def downgrade() -> None:
    # Indexes go with their tables; the children first (they reference the runs).
    for table in ("search_candidates", "search_epochs", "search_runs"):
        op.drop_table(table)
