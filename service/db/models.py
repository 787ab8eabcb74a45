"""The service's tables as SQLAlchemy 2 typed models.

One database is the only state of the service (SQLite on one machine, PostgreSQL for many):
API replicas and agents keep nothing the database does not have. Model files are stored in
the database too (``models.data``, deferred so listings never load it), so any replica can
serve them without a shared disk.

A lease is an attempt: ``attempts.id`` is the lease id an agent holds, and ``jobs.lease_id``
names the attempt that currently holds the job. A report for any other lease id is stale.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

JOB_STATES = ("queued", "leased", "done", "failed", "cancelled")
HEALTH_STATES = ("ok", "bad", "unknown")
TOKEN_ROLES = ("user", "agent")
FIT_KINDS = ("ops_line", "per_layer")
ATTEMPT_OUTCOMES = ("running", "done", "failed", "expired", "cancelled", "abandoned")
SEARCH_STATES = ("running", "done", "failed")

NAME_LENGTH = 200  # characters in a model, device, agent or token name
TAG_LENGTH = 200  # characters in a tag key or value
SHA256_HEX = 64  # characters


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC (the only time zone the database stores)."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zone type; without this, values read back naive there and aware on
    PostgreSQL, and comparisons between the two raise.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC times")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        list[int]: JSON(),
        list[float]: JSON(),
        list[str]: JSON(),
    }


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Model(Base):
    """An uploaded ``.tflite`` file, deduplicated by its SHA-256, with its analysis."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    size_bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    analysis: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tags: Mapped[list[ModelTag]] = relationship(
        back_populates="model", cascade="all, delete-orphan", lazy="selectin",
        order_by="ModelTag.key",
    )


class ModelTag(Base):
    """One ``key=value`` tag of a model (``backbone=kws``); a row each, so SQL can filter."""

    __tablename__ = "model_tags"
    __table_args__ = (Index("ix_model_tags_key_value", "key", "value"),)

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"),
                                          primary_key=True)
    key: Mapped[str] = mapped_column(String(TAG_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(String(TAG_LENGTH))

    model: Mapped[Model] = relationship(back_populates="tags")


class Agent(Base):
    """A worker process on a host with boards attached (``mcuprof agent``)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    version: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None]

    devices: Mapped[list[Device]] = relationship(back_populates="agent", order_by="Device.name")


class Device(Base):
    """One board (``virtual:nucleo-f446re:host-0``) of the class ``<backend>:<board>``."""

    __tablename__ = "devices"
    __table_args__ = (CheckConstraint(_in("health", HEALTH_STATES), name="health"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    device_class: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    board: Mapped[str] = mapped_column(String(NAME_LENGTH))
    backend: Mapped[str] = mapped_column(String(NAME_LENGTH))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"),
                                                 index=True)
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    health_detail: Mapped[str | None] = mapped_column(Text)
    last_seen: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Whether its agent registered an energy monitor on it: only then is a measurement's
    # energy_source "measured" believable.
    energy_monitor: Mapped[bool] = mapped_column(default=False, server_default=false())

    agent: Mapped[Agent | None] = relationship(back_populates="devices")


class Job(Base):
    """One model to profile on any board of one device class."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        # The lease query: the oldest highest-priority queued job of one device class.
        Index("ix_jobs_queue", "device_class", text("priority DESC"), "id",
              postgresql_where=text("state = 'queued'"), sqlite_where=text("state = 'queued'")),
        # The expiry sweep: leased jobs by expiry time.
        Index("ix_jobs_lease_expiry", "lease_expires_at",
              postgresql_where=text("state = 'leased'"), sqlite_where=text("state = 'leased'")),
        Index("ix_jobs_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    device_class: Mapped[str] = mapped_column(String(NAME_LENGTH))
    runs: Mapped[int]
    warmup: Mapped[int]
    kernels: Mapped[str] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The current lease (null unless state = 'leased'): an attempt row, its agent and board.
    lease_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    lease_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"))
    lease_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True)
    lease_expires_at: Mapped[datetime | None]

    model: Mapped[Model] = relationship()
    history: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.attempt", cascade="all, delete-orphan")
    measurement: Mapped[Measurement | None] = relationship(back_populates="job")


class Attempt(Base):
    """One lease of a job: who ran it, where, and how it ended. ``id`` is the lease id."""

    __tablename__ = "attempts"
    __table_args__ = (CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    agent: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    device: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    serial_log: Mapped[list[str] | None]

    job: Mapped[Job] = relationship(back_populates="history")


class Measurement(Base):
    """The result of a done job: one row per job at most (``job_id`` is unique)."""

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    lease_id: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    device: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    device_class: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    board: Mapped[str] = mapped_column(String(NAME_LENGTH))
    cycles: Mapped[int | None] = mapped_column(BigInteger)
    cycles_per_run: Mapped[list[int]]
    cycle_source: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    latency_ms: Mapped[float | None]
    energy_mj: Mapped[float | None]
    energy_source: Mapped[str | None] = mapped_column(String(16))
    arena_bytes: Mapped[int] = mapped_column(BigInteger)
    plan_bytes: Mapped[int] = mapped_column(BigInteger)
    flash_bytes: Mapped[int | None] = mapped_column(BigInteger)
    ops: Mapped[int] = mapped_column(BigInteger)
    macs: Mapped[int] = mapped_column(BigInteger)
    layers: Mapped[list[Any]]
    output: Mapped[list[float]]
    output_shape: Mapped[list[int]]
    kernels: Mapped[str] = mapped_column(String(8))
    firmware_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    plan_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    serial_log: Mapped[list[str]]
    # SHA-256 of the report as received: a duplicate report is recognised by it.
    report_sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="measurement")


class Token(Base):
    """An API token, stored as its SHA-256 (the token itself is shown once, at creation).

    An agent token is bound to one agent name: at creation (``--name``) or by the first
    agent it registers.
    """

    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint(_in("role", TOKEN_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    agent_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginCode(Base):
    """A one-time dashboard login code (``/login?code=...``), stored as its SHA-256.

    ``mcuprof demo`` prints a URL with one; the server exchanges it, once and before
    ``expires_at``, for a browser session (a user token kept in an HttpOnly cookie).
    """

    __tablename__ = "login_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_sha256: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class FitPartition(Base):
    """What the fits of one (device class, kernel path) were last computed from.

    ``fingerprint`` digests the usable measurements of the partition per backbone (count, max
    id, sum of ids) and the fitting code's version (``service.fits_store``): when the
    measurements say otherwise, the partition is refitted. ``notes`` say why a group has no
    fit (too few measurements, no backbone tag, a failed fit).
    """

    __tablename__ = "fit_partitions"
    __table_args__ = (UniqueConstraint("device_class", "kernels"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_class: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kernels: Mapped[str] = mapped_column(String(8))
    fingerprint: Mapped[str] = mapped_column(String(SHA256_HEX))
    n_measurements: Mapped[int]
    refitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    notes: Mapped[list[str]]


class Fit(Base):
    """One fitted latency model, immutable once stored; ``version`` names it for good.

    ``kind`` "ops_line": latency_ms = a·ops + b for (``device_class``, ``backbone``,
    ``kernels``). ``kind`` "per_layer": per-op-type cycle costs for (``device_class``,
    ``kernels``), every backbone (``backbone`` null). ``current`` marks the fit the service
    uses now; older versions stay, so a search can say which one it used. ``coefficients`` is
    the whole model as ``service.fitting`` serializes it; the metric columns repeat its
    cross-validated scores for SQL.
    """

    __tablename__ = "fits"
    __table_args__ = (
        CheckConstraint(_in("kind", FIT_KINDS), name="kind"),
        Index("ix_fits_device_class_current", "device_class", "current"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_class: Mapped[str] = mapped_column(String(NAME_LENGTH))
    backbone: Mapped[str | None] = mapped_column(String(TAG_LENGTH))
    kernels: Mapped[str] = mapped_column(String(8))
    version: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    current: Mapped[bool]
    n: Mapped[int]
    n_models: Mapped[int]
    k: Mapped[int]
    a_ms_per_op: Mapped[float | None]
    b_ms: Mapped[float | None]
    r2: Mapped[float]
    cv_r2: Mapped[float]
    cv_mape: Mapped[float]
    cv_acc10: Mapped[float]
    cv_rmse_ms: Mapped[float]
    coefficients: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FitMeasurement(Base):
    """A measurement a fit was fitted on (one row each)."""

    __tablename__ = "fit_measurements"

    fit_id: Mapped[int] = mapped_column(ForeignKey("fits.id", ondelete="CASCADE"),
                                        primary_key=True)
    measurement_id: Mapped[int] = mapped_column(
        ForeignKey("measurements.id", ondelete="CASCADE"), primary_key=True, index=True)


class Calibration(Base):
    """One calibration of a board's twin against the real board (``mcuprof calibrate``):
    the networks run on both, and what the server worked out from them
    (``bench_firmware.calibration.summarise``). Twins of ``board`` report calibrated cycles
    with the latest one for their kernel path."""

    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    board: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    device: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kernels: Mapped[str] = mapped_column(String(8))
    firmware_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    factor: Mapped[float]
    error_pct: Mapped[float]
    raw_error_pct: Mapped[float]
    held_out: Mapped[bool]
    op_errors: Mapped[dict[str, Any]]
    networks: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SearchRun(Base):
    """A DNAS search run (``search/``): its space, device classes, the whole config, budgets
    per device class, the fit versions its latency models came from, and what it found
    (``result``). Its epochs and candidates are rows of their own."""

    __tablename__ = "search_runs"
    __table_args__ = (CheckConstraint(_in("state", SEARCH_STATES), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    space: Mapped[str] = mapped_column(String(TAG_LENGTH))
    devices: Mapped[list[str]]
    config: Mapped[dict[str, Any]]
    budgets: Mapped[dict[str, Any]]
    fit_versions: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    result: Mapped[dict[str, Any] | None]


class SearchEpoch(Base):
    """One epoch of a run: temperature, loss, validation accuracy, predicted costs per device
    class and the argmax architecture then. (run, round, epoch) names it."""

    __tablename__ = "search_epochs"
    __table_args__ = (UniqueConstraint("run_id", "round", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("search_runs.id", ondelete="CASCADE"))
    round: Mapped[int]
    epoch: Mapped[int]
    temperature: Mapped[float | None]
    loss: Mapped[float | None]
    accuracy: Mapped[float | None]
    costs: Mapped[dict[str, Any]]
    candidate: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SearchCandidate(Base):
    """An architecture a run proposed: accuracy, predicted costs per device class and, once
    verified, the measured ones (with the job and measurement they came from). (run, round,
    arch_id) names it."""

    __tablename__ = "search_candidates"
    __table_args__ = (UniqueConstraint("run_id", "round", "arch_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("search_runs.id", ondelete="CASCADE"))
    round: Mapped[int]
    arch_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    architecture: Mapped[dict[str, Any]]
    accuracy: Mapped[float | None]
    predicted: Mapped[dict[str, Any]]
    measured: Mapped[dict[str, Any] | None]
    # A model may be deleted (DELETE /models/{id}) once nothing needs it: the candidate stays.
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"),
                                                 index=True)
    verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
