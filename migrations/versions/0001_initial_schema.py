"""Initial schema: models and tags, agents, devices, jobs, attempts (leases), measurements,
tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)
SHA256 = sa.String(length=64)


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", NAME, nullable=True),
        _time("created_at"),
        _time("last_seen", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", SHA256, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("sha256", name=op.f("uq_models_sha256")),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", SHA256, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("agent_name", NAME, nullable=True),
        _time("created_at"),
        sa.CheckConstraint("role IN ('user', 'agent')", name=op.f("ck_tokens_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_tokens_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_tokens_token_sha256")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("device_class", NAME, nullable=False),
        sa.Column("board", NAME, nullable=False),
        sa.Column("backend", NAME, nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("health_detail", sa.Text(), nullable=True),
        _time("last_seen", nullable=True),
        _time("created_at"),
        sa.CheckConstraint("health IN ('ok', 'bad', 'unknown')", name=op.f("ck_devices_health")),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="SET NULL",
                                name=op.f("fk_devices_agent_id_agents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("name", name=op.f("uq_devices_name")),
    )
    op.create_index(op.f("ix_devices_agent_id"), "devices", ["agent_id"])
    op.create_index(op.f("ix_devices_device_class"), "devices", ["device_class"])

    op.create_table(
        "model_tags",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("key", NAME, nullable=False),
        sa.Column("value", NAME, nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE",
                                name=op.f("fk_model_tags_model_id_models")),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_model_tags")),
    )
    op.create_index("ix_model_tags_key_value", "model_tags", ["key", "value"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("device_class", NAME, nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("warmup", sa.Integer(), nullable=False),
        sa.Column("kernels", sa.String(length=8), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.Column("lease_id", sa.Integer(), nullable=True),
        sa.Column("lease_agent_id", sa.Integer(), nullable=True),
        sa.Column("lease_device_id", sa.Integer(), nullable=True),
        _time("lease_expires_at", nullable=True),
        sa.CheckConstraint("state IN ('queued', 'leased', 'done', 'failed', 'cancelled')",
                           name=op.f("ck_jobs_state")),
        sa.ForeignKeyConstraint(["lease_agent_id"], ["agents.id"], ondelete="SET NULL",
                                name=op.f("fk_jobs_lease_agent_id_agents")),
        sa.ForeignKeyConstraint(["lease_device_id"], ["devices.id"], ondelete="SET NULL",
                                name=op.f("fk_jobs_lease_device_id_devices")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"],
                                name=op.f("fk_jobs_model_id_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("lease_id", name=op.f("uq_jobs_lease_id")),
    )
    op.create_index(op.f("ix_jobs_lease_device_id"), "jobs", ["lease_device_id"])
    op.create_index(op.f("ix_jobs_model_id"), "jobs", ["model_id"])
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])
    queued = sa.text("state = 'queued'")
    op.create_index("ix_jobs_queue", "jobs", ["device_class", sa.text("priority DESC"), "id"],
                    postgresql_where=queued, sqlite_where=queued)
    leased = sa.text("state = 'leased'")
    op.create_index("ix_jobs_lease_expiry", "jobs", ["lease_expires_at"],
                    postgresql_where=leased, sqlite_where=leased)

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("agent", NAME, nullable=True),
        sa.Column("device", NAME, nullable=True),
        _time("started_at"),
        _time("ended_at", nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("serial_log", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('running', 'done', 'failed', 'expired', 'cancelled', 'abandoned')",
            name=op.f("ck_attempts_outcome")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE",
                                name=op.f("fk_attempts_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index(op.f("ix_attempts_job_id"), "attempts", ["job_id"])

    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("device", NAME, nullable=False),
        sa.Column("device_class", NAME, nullable=False),
        sa.Column("board", NAME, nullable=False),
        sa.Column("cycles", sa.BigInteger(), nullable=True),
        sa.Column("cycles_per_run", sa.JSON(), nullable=False),
        sa.Column("cycle_source", NAME, nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("energy_mj", sa.Double(), nullable=True),
        sa.Column("energy_source", sa.String(length=16), nullable=True),
        sa.Column("arena_bytes", sa.BigInteger(), nullable=False),
        sa.Column("plan_bytes", sa.BigInteger(), nullable=False),
        sa.Column("flash_bytes", sa.BigInteger(), nullable=True),
        sa.Column("ops", sa.BigInteger(), nullable=False),
        sa.Column("macs", sa.BigInteger(), nullable=False),
        sa.Column("layers", sa.JSON(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("output_shape", sa.JSON(), nullable=False),
        sa.Column("kernels", sa.String(length=8), nullable=False),
        sa.Column("firmware_id", NAME, nullable=True),
        sa.Column("plan_id", NAME, nullable=True),
        sa.Column("serial_log", sa.JSON(), nullable=False),
        sa.Column("report_sha256", SHA256, nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE",
                                name=op.f("fk_measurements_job_id_jobs")),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"],
                                name=op.f("fk_measurements_model_id_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurements")),
        sa.UniqueConstraint("job_id", name=op.f("uq_measurements_job_id")),
    )
    op.create_index(op.f("ix_measurements_device"), "measurements", ["device"])
    op.create_index(op.f("ix_measurements_device_class"), "measurements", ["device_class"])
    op.create_index(op.f("ix_measurements_model_id"), "measurements", ["model_id"])


def downgrade() -> None:
    # Indexes go with their tables.
    for table in ("measurements", "attempts", "jobs", "model_tags", "devices", "tokens",
                  "models", "agents"):
        op.drop_table(table)
