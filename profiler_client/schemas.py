"""The REST contract of ``/api/v1``: request and response bodies, shared by the API (FastAPI
routes), the agent and the client library. Changing a field here changes the contract.

Resources and routes (all JSON unless said; errors are ``{"detail": "<what was wrong and
what to do>"}`` with a 4xx status, never a 500 for bad input). What a client or an agent
sends is bounded by the ``MAX_*`` constants below (422 past them; a JSON body past
``service.api.json_body.MAX_JSON_BODY_BYTES`` is a 413):

Models
    ``POST /api/v1/models`` multipart ``file`` (.tflite), optional ``name``, repeated ``tag``
    (``k=v``) → ``ModelOut``; 201 when new, 200 when the same bytes (sha256) were uploaded
    before (tags are merged). Analyzed on upload (``mcuprof analyze``); a float model or an
    unsupported op is refused with 422.
    ``GET /api/v1/models?tag=k=v&limit=&offset=`` → ``list[ModelOut]``
    ``GET /api/v1/models/{id}`` → ``ModelOut``; ``GET /api/v1/models/{id}/file`` → the bytes
    ``GET /api/v1/models/{id}/measurements`` → ``list[MeasurementOut]``
Jobs
    ``POST /api/v1/jobs`` ``JobsIn`` → ``list[JobOut]`` (one per device class), 201. A model
    that does not fit a device's board fails its job at once with the arena/flash numbers.
    ``GET /api/v1/jobs?state=&device=&model_id=&limit=&offset=`` → ``list[JobOut]``
    ``GET /api/v1/jobs/{id}`` → ``JobOut`` (with ``measurement`` once done)
    ``POST /api/v1/jobs/{id}/cancel`` → ``JobOut``
Devices
    ``GET /api/v1/devices`` → ``list[DeviceOut]``
Agents and leases (agent tokens)
    ``GET /api/v1/whoami`` → ``WhoamiOut`` (the token's role and the agent it is bound to)
    ``POST /api/v1/agents`` ``AgentIn`` → ``AgentOut`` (registers or re-registers by name;
    an agent token registers only the agent it is bound to, and no agent takes over another
    agent's boards)
    ``POST /api/v1/agents/{id}/heartbeat`` ``HeartbeatIn`` → ``HeartbeatOut``
    ``POST /api/v1/leases`` ``LeaseIn`` → ``LeaseOut``, or 204 when there is no work
    ``POST /api/v1/leases/{lease_id}/result`` ``MeasurementIn`` → ``JobOut`` (idempotent)
    ``POST /api/v1/leases/{lease_id}/failure`` ``FailureIn`` → ``JobOut``
    ``POST /api/v1/devices/{name}/health`` ``HealthIn`` → ``DeviceOut``
Measurements
    ``GET /api/v1/measurements?device=&model_id=&tag=k=v&limit=&offset=&format=json|csv|parquet``
Fits and predictions (latency models, ``service/fits_store.py``)
    ``GET /api/v1/fits?device=&backbone=&kernels=&kind=&history=&format=json|csv|parquet`` →
    ``list[FitOut]`` (current fits; refitted first when measurements arrived since)
    ``GET /api/v1/fits/{version}`` → ``FitOut`` with its ``measurement_ids``
    ``POST /api/v1/predict`` ``PredictIn`` (JSON), or multipart ``file`` (.tflite), repeated
    ``device``, optional ``backbone`` and ``kernels`` → ``PredictOut``
Search runs (DNAS, ``docs/searches.md``; written with user tokens)
    ``POST /api/v1/searches`` ``SearchRunIn`` → ``SearchRunOut``, 201
    ``GET /api/v1/searches?state=&limit=&offset=`` → ``list[SearchRunOut]`` (newest first)
    ``GET /api/v1/searches/{id}`` → ``SearchRunOut`` with its epochs and candidates
    ``PATCH /api/v1/searches/{id}`` ``SearchRunPatch`` → ``SearchRunOut``
    ``POST /api/v1/searches/{id}/epochs`` ``SearchEpochIn`` or a list of them →
    ``list[SearchEpochOut]``, 201 (a (round, epoch) sent again replaces its record)
    ``POST /api/v1/searches/{id}/candidates`` ``SearchCandidateIn`` → ``SearchCandidateOut``;
    201 when new, 200 when the run has that (round, arch_id) already (it is updated)
    ``PATCH /api/v1/searches/{id}/candidates/{cid}`` ``SearchCandidatePatch`` →
    ``SearchCandidateOut``

Auth: ``Authorization: Bearer <token>``. User tokens submit and read; agent tokens register,
lease, heartbeat and report for their own boards and leases only. An agent token is the
agent's identity: created with a name, or bound to the name of its first registration, and
never to another. Without configured auth (loopback
development) every request is allowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

# --------------------------------------------------------------------------------------------
# Bounds of what a client or an agent may send. Everything that is stored or shown has a
# limit here, so a request is refused with a 422 that names the field instead of reaching
# the database (an integer past 63 bits is a 500 on SQLite) or every dashboard page.

MAX_INT64 = 2**63 - 1  # the database's BIGINT
MAX_ID = 2**31 - 1  # ids, lease ids and priorities are 32-bit INTEGER columns
MIN_PRIORITY, MAX_PRIORITY = -(2**31), MAX_ID
MAX_ADDRESSABLE_BYTES = 2**32  # bytes: a Cortex-M address space is 32 bits (ARMv7-M B3.1)
NAME_CHARS = 200  # characters in a model, device, agent, firmware or plan name (the columns)
TAG_CHARS = 200  # characters in a tag key or value, and in a backbone
OP_NAME_CHARS = 64  # characters in an operator name (TFLite BuiltinOperator, e.g. CONV_2D)
MAX_RANK = 8  # dimensions of a tensor shape (TFLite Micro handles up to 5)
MAX_DIM = MAX_ID  # elements along one dimension (TFLite shapes are int32)
MAX_LAYERS = 1024  # operators in a layer list; the firmware runs at most 256 (MP_MAX_OPS)
MAX_OUTPUT_VALUES = 65_536  # values of a reported output; MLPerf Tiny's largest output (the
#                             anomaly-detection autoencoder) has 640
MAX_RUNS = 1000  # timed inferences per job, so entries of cycles_per_run
MAX_WARMUP = 100  # warm-up inferences per job
MAX_LOG_LINES = 2000  # serial-log lines kept with a measurement or a failure (the last ones)
MAX_LOG_LINE_CHARS = 1000  # characters per serial-log line
MAX_ERROR_CHARS = 4000  # characters of an attempt's error message
MAX_HEALTH_DETAIL_CHARS = 1000  # characters of a health check's detail (shown on the dashboard)
MAX_DEVICES = 64  # device classes in one submission or prediction
MAX_BOARDS = 256  # boards one agent registers
MAX_HEARTBEAT_LEASES = MAX_BOARDS  # leases in one heartbeat: one per board at most
MAX_LATENCY_MS = 86_400_000.0  # ms (a day): no measured inference takes longer
MAX_ENERGY_MJ = 1e9  # mJ (a megajoule): far above any inference on a board
MAX_TAGS = 32  # tags sent with one upload or filter
TAG_FILTER_CHARS = 2 * TAG_CHARS + 1  # characters of one ``key=value``
TAG_PATTERN = r"^[^=]*[^=\s][^=]*=.*$"  # ``key=value`` with a key that is not blank
CLIPPED = " [...]"  # marks text that log_tail / clip shortened

Name = Annotated[str, Field(max_length=NAME_CHARS)]
Count = Annotated[int, Field(ge=0, le=MAX_INT64, description="a count (ops, MACs, cycles)")]
Bytes = Annotated[int, Field(ge=0, le=MAX_ADDRESSABLE_BYTES, description="bytes")]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Dim = Annotated[int, Field(ge=0, le=MAX_DIM)]
Shape = Annotated[list[Dim], Field(max_length=MAX_RANK)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
TagFilter = Annotated[str, Field(pattern=TAG_PATTERN, max_length=TAG_FILTER_CHARS,
                                 description="key=value")]
LogLine = Annotated[str, Field(max_length=MAX_LOG_LINE_CHARS)]
SerialLog = Annotated[list[LogLine], Field(
    max_length=MAX_LOG_LINES,
    description=f"the last serial lines (at most {MAX_LOG_LINES} of {MAX_LOG_LINE_CHARS} "
                f"characters; log_tail makes one)")]


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked when it was cut."""
    return text if len(text) <= limit else text[:max(0, limit - len(CLIPPED))] + CLIPPED


def log_tail(lines: Sequence[str]) -> list[str]:
    """The part of a serial log that a report may carry: the last ``MAX_LOG_LINES`` lines,
    each clipped to ``MAX_LOG_LINE_CHARS`` (the end of a log says why a run failed)."""
    return [clip(line, MAX_LOG_LINE_CHARS) for line in lines[-MAX_LOG_LINES:]]


JobState = Literal["queued", "leased", "done", "failed", "cancelled"]
Health = Literal["ok", "bad", "unknown"]
Kernels = Literal["dsp", "ref"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LayerOut(BaseModel):
    index: int
    op: str
    macs: int
    ops: int
    param_bytes: int = 0
    plan_bytes: int = 0
    output_shape: list[int] = Field(default_factory=list)
    cycles: int | None = None


class LayerIn(LayerOut):
    """One layer as a client or an agent sends it: ``LayerOut`` with bounds."""

    index: int = Field(ge=0, lt=MAX_LAYERS)
    op: str = Field(min_length=1, max_length=OP_NAME_CHARS)
    macs: Count
    ops: Count
    param_bytes: Bytes = 0
    plan_bytes: Bytes = 0
    output_shape: Shape = Field(default_factory=list)
    cycles: Count | None = None


def _layer_dicts(value: Any) -> Any:
    """Layers given as ``LayerOut`` (an analysis, a stored measurement) validated as
    ``LayerIn``, with its bounds."""
    if isinstance(value, list):
        return [v.model_dump() if isinstance(v, LayerOut) and not isinstance(v, LayerIn)
                else v for v in value]
    return value


class AnalysisOut(BaseModel):
    """``mcuprof analyze --json`` of the model (board-independent figures)."""

    ops: int
    macs: int
    param_bytes: int
    plan_bytes: int
    arena_bytes: int
    input_shape: list[int]
    output_shape: list[int]
    layers: list[LayerOut]


class ModelOut(_Out):
    id: int
    sha256: str
    name: str
    size_bytes: int
    tags: dict[str, str]
    analysis: AnalysisOut
    created_at: datetime


class JobsIn(BaseModel):
    model_id: Id
    devices: list[Name] = Field(min_length=1, max_length=MAX_DEVICES,
                                description="device classes, e.g. virtual:nucleo-f446re")
    runs: int = Field(default=5, ge=1, le=MAX_RUNS)
    warmup: int = Field(default=1, ge=0, le=MAX_WARMUP)
    kernels: Kernels = "dsp"
    priority: int = Field(default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY,
                          description="higher runs first")


class AttemptOut(_Out):
    attempt: int
    agent: str | None
    device: str | None
    started_at: datetime
    error: str | None


class MeasurementIn(BaseModel):
    """What an agent reports: the fields of ``mcuprof run --json`` plus provenance.

    Bounded: cycles and sizes are non-negative (sizes within the 32-bit address space),
    latency is positive, every float is finite (NaN and infinity are refused, not stored),
    and lists and text have the lengths of ``MAX_*`` above."""

    device: Name = Field(description="the board that ran it, e.g. virtual:nucleo-f446re:host-0")
    output: list[FiniteFloat] = Field(max_length=MAX_OUTPUT_VALUES,
                                      description="the dequantized output of the last run")
    output_shape: Shape
    cycles: Count | None = Field(description="cycles of one inference")
    cycles_per_run: list[Count] = Field(max_length=MAX_RUNS)
    cycle_source: Name | None = None
    latency_ms: float | None = Field(gt=0, le=MAX_LATENCY_MS, allow_inf_nan=False,
                                     description="ms per inference at the board's clock")
    energy_mj: float | None = Field(ge=0, le=MAX_ENERGY_MJ, allow_inf_nan=False,
                                    description="mJ per inference")
    energy_source: Literal["measured", "modeled"] | None
    arena_bytes: Bytes
    plan_bytes: Bytes
    flash_bytes: Bytes | None = None  # firmware + plan
    ops: Count
    macs: Count
    layers: list[LayerIn] = Field(max_length=MAX_LAYERS)
    kernels: Kernels = "dsp"
    firmware_id: Name | None = None
    plan_id: Name | None = None
    serial_log: SerialLog = Field(default_factory=list)

    _layers = field_validator("layers", mode="before")(_layer_dicts)


class MeasurementOut(_Out):
    id: int
    job_id: int
    model_id: int
    device: str
    device_class: str
    board: str
    cycles: int | None
    cycles_per_run: list[int]
    cycle_source: str | None
    latency_ms: float | None
    energy_mj: float | None
    energy_source: str | None
    arena_bytes: int
    plan_bytes: int
    flash_bytes: int | None
    ops: int
    macs: int
    layers: list[LayerOut]
    output: list[float]
    kernels: str
    firmware_id: str | None
    plan_id: str | None
    created_at: datetime
    error_band_pct: float | None = Field(
        default=None, description="a virtual twin's stated error against silicon, ± percent "
        "(cycle-model cycles only; None for silicon, Renode and unknown sources); worked out "
        "when read, from the board and cycle_source, not stored")
    error_band_basis: str | None = Field(default=None,
                                         description="where the error band comes from")
    error_band_label: str | None = Field(
        default=None, description="e.g. 'cycle model, ±13 % vs silicon'")
    calibrated_cycles: int | None = Field(
        default=None, description="a twin's cycles × the factor of the latest calibration of "
        "its board against the real board (mcuprof calibrate); None when not calibrated")
    calibrated_latency_ms: float | None = None
    calibration_id: int | None = None
    calibrated_at: datetime | None = Field(default=None,
                                           description="when that calibration was made")
    calibrated_error_pct: float | None = Field(
        default=None, description="the calibration's error against silicon, ± percent: the "
        "band of calibrated_cycles (error_band_pct stays the band of the model's own cycles)")
    calibrated_label: str | None = Field(
        default=None, description="e.g. 'calibrated cycle model, ±4.2 % vs silicon'")
    calibrated_basis: str | None = None


class JobOut(_Out):
    id: int
    model_id: int
    device: str = Field(description="the device class the job targets")
    state: JobState
    runs: int
    warmup: int
    kernels: str
    attempts: int
    max_attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    lease_expires_at: datetime | None = None
    history: list[AttemptOut] = Field(default_factory=list)
    measurement_id: int | None = Field(default=None, description="the measurement of a done job")
    measurement: MeasurementOut | None = Field(
        default=None, description="the whole measurement of a done job (left out of lists "
                                  "unless they ask with embed=true)")


class BoardIn(BaseModel):
    device: Name = Field(description="full device name, e.g. virtual:nucleo-f446re:host-0")
    energy_monitor: StrictBool = Field(
        default=False, description="an energy monitor (X-NUCLEO-LPM01A) measures this board; "
        "only then may its measurements say energy_source 'measured'")


class AgentIn(BaseModel):
    name: Name
    boards: list[BoardIn] = Field(max_length=MAX_BOARDS)
    version: Name | None = None


class DeviceOut(_Out):
    name: str
    device_class: str
    board: str
    backend: str
    agent: str | None
    health: Health
    health_detail: str | None
    last_seen: datetime | None
    busy: bool
    energy_monitor: bool = False


class AgentOut(_Out):
    id: int
    name: str
    devices: list[DeviceOut]


class WhoamiOut(BaseModel):
    """Who a token is: its name and role, and for an agent token the agent it is bound to
    (None until its first registration, when it was created without a name)."""

    token: str
    role: Literal["user", "agent", "anonymous"]
    agent: str | None = None


class HeartbeatIn(BaseModel):
    leases: list[Id] = Field(default_factory=list, max_length=MAX_HEARTBEAT_LEASES,
                             description="lease ids still being worked on (one per board)")


class HeartbeatOut(BaseModel):
    extended: list[int]
    lost: list[int] = Field(description="leases that expired or were cancelled: stop that work")
    lease_seconds: float


class FinishedIn(BaseModel):
    """The result of the lease a board just finished, reported with its next lease request
    (one request per job instead of two)."""

    lease_id: int = Field(ge=1, le=MAX_ID, description="the finished lease")
    result: MeasurementIn


class LeaseIn(BaseModel):
    device: Name = Field(description="the full device name of an idle board of this agent")
    finished: FinishedIn | None = Field(
        default=None,
        description="report this board's finished lease first, in the same transaction: when "
                    "the report is refused (409: the lease no longer holds its job) nothing "
                    "is leased")


class LeaseOut(BaseModel):
    lease_id: int
    job: JobOut
    model_sha256: str
    model_url: str
    expires_at: datetime
    lease_seconds: float


class FailureIn(BaseModel):
    error: str = Field(max_length=MAX_ERROR_CHARS, description="what went wrong (clip makes "
                                                              "a long message fit)")
    retryable: StrictBool = True
    serial_log: SerialLog = Field(default_factory=list)


class HealthIn(BaseModel):
    ok: StrictBool
    detail: str | None = Field(default=None, max_length=MAX_HEALTH_DETAIL_CHARS,
                               description="what the check found (shown on the dashboard)")


def measurement_row(m: MeasurementOut) -> dict[str, Any]:
    """One flat CSV row for a measurement (layers and outputs left out)."""
    return {k: v for k, v in m.model_dump().items() if k not in ("layers", "output")} | {
        "cycles_per_run": " ".join(str(c) for c in m.cycles_per_run),
    }


# --------------------------------------------------------------------------------------------
# Fits and predictions

FitKind = Literal["ops_line", "per_layer"]


class FitMetricsOut(BaseModel):
    """Scores of a latency model on ``n`` measurements: r², MAPE and ±10 % accuracy as
    fractions (0.05 = 5 %), RMSE in ms."""

    n: int
    r2: float
    mape: float
    acc10: float = Field(description="share of models predicted within ±10 % (nn-Meter)")
    rmse_ms: float


class FitOut(BaseModel):
    """A stored latency model. ``ops_line``: latency_ms = a_ms_per_op · ops + b_ms for one
    (device class, backbone, kernels); ``per_layer``: per-op-type cycle costs for one
    (device class, kernels), any backbone. ``metrics`` are k-fold cross-validated (the ones
    to quote); ``coefficients`` is the whole model (``service.fitting``'s ``to_dict``)."""

    id: int
    kind: FitKind
    device_class: str
    backbone: str | None
    kernels: str
    version: str = Field(description="names this fit for good; cite it with the search")
    current: bool = Field(description="whether the service predicts with it now")
    created_at: datetime
    n: int = Field(description="measurements it was fitted on")
    n_models: int
    k: int = Field(description="cross-validation folds")
    a_ms_per_op: float | None = None
    b_ms: float | None = None
    r2: float = Field(description="in-sample r² (what MicroNets reports)")
    metrics: FitMetricsOut
    in_sample: FitMetricsOut
    coefficients: dict[str, Any]
    measurement_ids: list[int] | None = Field(
        default=None, description="the measurements it came from (GET /fits/{version})")
    error_band_pct: float | None = Field(
        default=None, description="fitted on a virtual twin's cycle-model latencies: the twin's "
        "stated error against silicon, ± percent (predictions widen their intervals by it)")
    error_band_basis: str | None = None
    error_band_label: str | None = None
    calibration_id: int | None = Field(
        default=None, description="the latest calibration of the twin against its real board: "
        "predictions scale the fit by calibration_factor and state its error as the band")
    calibration_factor: float | None = None
    calibrated_at: datetime | None = None
    calibrated_error_pct: float | None = None
    calibrated_label: str | None = None
    calibrated_basis: str | None = None


class PredictIn(BaseModel):
    """What to predict: ``ops`` with a ``backbone`` (the op-count line), and/or ``layers``
    (the per-layer model; ``model_id`` takes ops, layers and backbone from a stored model)."""

    devices: list[Name] = Field(default_factory=list, max_length=MAX_DEVICES,
                                description="device classes, e.g. virtual:nucleo-f446re; "
                                            "empty: every class with a fit")
    ops: int | None = Field(default=None, ge=0, le=MAX_INT64,
                            description="ops of the model (1 MAC = 2 ops)")
    backbone: str | None = Field(default=None, max_length=TAG_CHARS,
                                 description="search-space tag of the model")
    layers: list[LayerIn] | None = Field(default=None, max_length=MAX_LAYERS)
    input_shape: Shape | None = None
    model_id: Id | None = None
    kernels: Kernels = "dsp"

    _layers = field_validator("layers", mode="before")(_layer_dicts)


class EstimateOut(BaseModel):
    """One latency model's prediction, with its prediction interval."""

    model: FitKind
    fit_version: str
    backbone: str | None = Field(description="the line's backbone (None: per-layer model)")
    latency_ms: float
    latency_lo_ms: float
    latency_hi_ms: float
    level: float = Field(description="coverage of the interval, e.g. 0.95")
    extrapolated: bool = Field(description="outside what the model was fitted on")
    fit_lo_ms: float | None = Field(
        default=None, description="the fit's own interval (× the calibration factor on a "
        "calibrated twin), before the twin's error band widened it (None: not widened, "
        "latency_lo_ms is the fit's)")
    fit_hi_ms: float | None = None
    error_band_pct: float | None = Field(
        default=None, description="a twin's stated error against silicon, ± percent: the "
        "interval [latency_lo_ms, latency_hi_ms] is the fit's widened to the silicon latencies "
        "it allows, fit_lo / (1 + band) to fit_hi / (1 − band)")
    error_band_basis: str | None = None
    energy_mj: float | None = None
    energy_lo_mj: float | None = None
    energy_hi_mj: float | None = None
    cv_mape: float
    cv_acc10: float
    n: int


class DevicePredictionOut(BaseModel):
    """Predicted latency and energy on one device class. The headline figures are those of
    ``model`` (the applicable estimate with the lowest cross-validated MAPE); energy is the
    board's active power × latency. ``problems`` says why an estimate is missing."""

    device: str
    board: str
    kernels: str
    model: FitKind | None = None
    fit_version: str | None = None
    latency_ms: float | None = None
    latency_lo_ms: float | None = None
    latency_hi_ms: float | None = None
    energy_mj: float | None = None
    energy_lo_mj: float | None = None
    energy_hi_mj: float | None = None
    active_power_mw: float | None = None
    power_source: str | None = None
    estimates: list[EstimateOut] = Field(default_factory=list)
    arena_bytes: int | None = None
    arena_capacity: int | None = None
    plan_bytes: int | None = None
    model_region_bytes: int | None = None
    fits_board: bool | None = Field(default=None, description="arena and plan fit the board")
    problems: list[str] = Field(default_factory=list)
    error_band_pct: float | None = Field(
        default=None, description="the device class is a virtual twin: its stated error "
        "against silicon (± percent), already in the latency and energy intervals")
    error_band_label: str | None = None
    calibration_id: int | None = Field(
        default=None, description="a real board calibrated this twin: latency and intervals "
        "are the fit's × calibration_factor, the band is the calibration's error")
    calibration_factor: float | None = None
    calibrated_at: datetime | None = None


class PredictOut(BaseModel):
    name: str | None = None
    ops: int | None
    macs: int | None = None
    backbone: str | None
    predictions: list[DevicePredictionOut]


# --------------------------------------------------------------------------------------------
# Calibrations: a twin against its real board (mcuprof calibrate)

MAX_CALIBRATION_NETWORKS = 64  # networks in one calibration
MAX_OP_TYPES = 64  # operator types per network


class CalibrationNetworkIn(BaseModel):
    """One network on the real board and on its twin: median cycles of the timed runs, and the
    last run's per-layer cycles summed per operator type. ``kind`` "microbenchmark": one
    operator isolating an instruction class / memory path (``exercises``); it states its own
    twin / silicon ratio and does not enter the factor (uploads without ``kind`` are
    networks)."""

    name: Name
    kind: Literal["network", "microbenchmark"] = "network"
    exercises: Name | None = Field(default=None, description="a microbenchmark's instruction "
                                   "class / memory path, e.g. 'fully connected, ... flash "
                                   "data-read path'")
    macs: Count
    silicon_cycles: int = Field(ge=1, le=MAX_INT64, description="DWT CYCCNT on the board")
    twin_cycles: int = Field(ge=1, le=MAX_INT64, description="the twin's cycle model")
    silicon_by_op: dict[Name, Count] = Field(default_factory=dict, max_length=MAX_OP_TYPES)
    twin_by_op: dict[Name, Count] = Field(default_factory=dict, max_length=MAX_OP_TYPES)


class CalibrationIn(BaseModel):
    """What ``mcuprof calibrate`` uploads. The server works out the factor and the errors
    itself (``bench_firmware.calibration.summarise``) from the networks."""

    device: Name = Field(description="the physical board, e.g. pyocd:nucleo-f446re:066DFF...")
    kernels: Kernels = "dsp"
    firmware_id: Name | None = None
    networks: list[CalibrationNetworkIn] = Field(min_length=1,
                                                 max_length=MAX_CALIBRATION_NETWORKS)


class CalibrationOut(_Out):
    """A stored calibration of ``board``'s twin. ``factor`` = silicon / twin cycles (median over
    the networks): calibrated twin cycles are the twin's × factor. ``error_pct``: the largest
    error of a calibrated figure on a network the factor was not computed from (leave-one-out;
    with one network, the uncalibrated error); ``raw_error_pct``: the twin's largest error
    before calibration; ``op_errors``: twin / silicon − 1 per operator type (networks' layers);
    ``bench_ratios``: twin / silicon cycles per microbenchmark."""

    id: int
    board: str
    device: str
    kernels: str
    firmware_id: str | None
    factor: float
    error_pct: float
    raw_error_pct: float
    held_out: bool
    op_errors: dict[str, float]
    networks: list[CalibrationNetworkIn]
    created_at: datetime
    bench_ratios: dict[str, float] = Field(
        default_factory=dict, description="twin / silicon cycles of each microbenchmark (per "
        "instruction class / memory path), by name")


# --------------------------------------------------------------------------------------------
# Search runs (DNAS): the run, its epochs as it trains, the architectures it proposed
# (candidates) and what measuring them said (the verification loop of DESIGN.md). Costs are
# per device class; a device class that is a twin (virtual:...) has cycle-model latencies,
# and the dashboard says so.

SearchState = Literal["running", "done", "failed"]
SEARCH_STATES: tuple[SearchState, ...] = ("running", "done", "failed")
MAX_SEARCH_EPOCHS_PER_POST = 1000  # epoch records in one POST
MAX_SEARCH_EPOCHS = 100_000  # epoch records one run keeps
MAX_SEARCH_CANDIDATES = 10_000  # candidates one run keeps
MAX_CONFIG_JSON_BYTES = 256 * 1024  # bytes of a run's config or result, as compact JSON
MAX_ARCH_JSON_BYTES = 64 * 1024  # bytes of one architecture, as compact JSON
MAX_JSON_DEPTH = 32  # levels of nesting of a config, result or architecture


def _json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored: nested too deeply, or a number JSON
    has no spelling for (Python's parser reads NaN and Infinity)."""
    if depth > MAX_JSON_DEPTH:
        return f"it is nested deeper than {MAX_JSON_DEPTH} levels; flatten it"
    if isinstance(value, float) and not math.isfinite(value):
        return ("it holds a NaN or infinite number, which JSON cannot carry; send null or a "
                "finite number")
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            problem = _json_problem(item, depth + 1)
            if problem:
                return problem
    return None


def _bounded_json(limit: int) -> AfterValidator:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        problem = _json_problem(value)
        if problem is None:
            size = len(json.dumps(value, separators=(",", ":")).encode())
            if size > limit:
                problem = (f"it is {size} bytes as JSON, at most {limit} are kept; store "
                           f"bulky data elsewhere and reference it")
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


ConfigJSON = Annotated[dict[str, Any], _bounded_json(MAX_CONFIG_JSON_BYTES)]
ArchJSON = Annotated[dict[str, Any], _bounded_json(MAX_ARCH_JSON_BYTES)]
ArchId = Annotated[str, Field(min_length=1, max_length=NAME_CHARS,
                              description="the architecture's id in its search space")]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False,
                                  description="a fraction (0.91 = 91 %)")]
LatencyMs = Annotated[float, Field(ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False,
                                   description="ms per inference at the board's clock")]
SearchRound = Annotated[int, Field(ge=0, le=MAX_ID, description=(
    "the search round: 0, then one more each time the search refits and searches again"))]


def _devices_named(devices: Sequence[str], **mappings: dict[str, Any] | None) -> None:
    """Refuse mappings keyed by a device that is not one of ``devices``."""
    for field, mapping in mappings.items():
        stray = sorted(set(mapping or {}) - set(devices))
        if stray:
            raise ValueError(f"{field} names {', '.join(map(repr, stray))}, not one of the "
                             f"run's devices ({', '.join(devices)}); key it by those")


class SearchBudget(BaseModel):
    """What a device class allows an architecture (None: no limit of that kind)."""

    sram_bytes: Bytes | None = Field(default=None, description="arena bytes at most")
    flash_bytes: Bytes | None = Field(default=None, description="plan bytes at most (what the "
                                      "model flash region holds)")
    latency_ms: float | None = Field(default=None, gt=0, le=MAX_LATENCY_MS,
                                     allow_inf_nan=False, description="ms per inference at most")


class SearchCost(BaseModel):
    """A device class's predicted costs of the search's current architecture distribution at
    an epoch: expectations under the relaxation, so they may be fractional."""

    latency_ms: LatencyMs | None = None
    sram_bytes: float | None = Field(default=None, ge=0, le=MAX_ADDRESSABLE_BYTES,
                                     allow_inf_nan=False, description="arena bytes")
    flash_bytes: float | None = Field(default=None, ge=0, le=MAX_ADDRESSABLE_BYTES,
                                      allow_inf_nan=False, description="plan bytes")
    ops: float | None = Field(default=None, ge=0, le=MAX_INT64, allow_inf_nan=False,
                              description="ops (1 MAC = 2 ops)")


class SearchArch(BaseModel):
    """An architecture: its id and its description in the search space."""

    arch_id: ArchId
    architecture: ArchJSON = Field(default_factory=dict)


class SearchEpochIn(BaseModel):
    """One epoch of a run: the temperature of the relaxation, loss, validation accuracy, the
    predicted costs per device class and the current argmax architecture."""

    round: SearchRound = 0
    epoch: int = Field(ge=0, le=MAX_ID)
    temperature: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    loss: FiniteFloat | None = None
    accuracy: Fraction | None = Field(default=None, description="validation accuracy (0-1)")
    costs: dict[Name, SearchCost] = Field(default_factory=dict, max_length=MAX_DEVICES)
    candidate: SearchArch | None = Field(default=None,
                                         description="the current argmax architecture")


class SearchArchOut(BaseModel):
    arch_id: str
    architecture: dict[str, Any]


class SearchEpochOut(BaseModel):
    id: int
    run_id: int
    round: int
    epoch: int
    temperature: float | None
    loss: float | None
    accuracy: float | None
    costs: dict[str, SearchCost]
    candidate: SearchArchOut | None
    created_at: datetime


class SearchPrediction(BaseModel):
    """What a latency model predicted for a candidate on one device class (as in
    ``DevicePredictionOut``): the headline latency, its interval, memory, the fit's version."""

    latency_ms: LatencyMs
    latency_lo_ms: LatencyMs | None = None
    latency_hi_ms: LatencyMs | None = None
    sram_bytes: Bytes | None = Field(default=None, description="arena bytes")
    flash_bytes: Bytes | None = Field(default=None, description="plan bytes")
    fit_version: Name | None = None
    extrapolated: StrictBool = Field(default=False,
                                     description="outside what the fit was fitted on")

    @model_validator(mode="after")
    def _ordered(self) -> SearchPrediction:
        lo, hi = self.latency_lo_ms, self.latency_hi_ms
        if (lo is not None and lo > self.latency_ms) or (hi is not None and hi < self.latency_ms):
            raise ValueError(f"the interval [{lo}, {hi}] ms does not hold latency_ms "
                             f"{self.latency_ms}; send latency_lo_ms <= latency_ms <= "
                             f"latency_hi_ms")
        return self


class SearchMeasured(BaseModel):
    """A candidate measured on one device class: the measurement's latency, arena
    (``sram_bytes``) and plan (``flash_bytes``), and the job and measurement it came from."""

    latency_ms: float = Field(gt=0, le=MAX_LATENCY_MS, allow_inf_nan=False,
                              description="ms per inference at the board's clock")
    sram_bytes: Bytes | None = Field(default=None, description="the measurement's arena_bytes")
    flash_bytes: Bytes | None = Field(default=None, description="the measurement's plan_bytes")
    job_id: Id | None = None
    measurement_id: Id | None = None
    cycle_source: Name | None = Field(
        default=None, description="where the cycles came from (dwt-cyccnt: silicon; "
        "cycle-model: a twin): the server takes it from the measurement when measurement_id "
        "names one")


class SearchCandidateIn(BaseModel):
    """An architecture a run proposed, with its accuracy and predicted costs per device class.
    The run's (round, arch_id) names it: sending it again updates it."""

    round: SearchRound = 0
    arch_id: ArchId
    architecture: ArchJSON = Field(default_factory=dict)
    accuracy: Fraction | None = Field(default=None, description="validation accuracy (0-1)")
    predicted: dict[Name, SearchPrediction] = Field(default_factory=dict,
                                                    max_length=MAX_DEVICES)
    model_id: Id | None = Field(default=None, description="the model uploaded for it")


class SearchCandidateOut(BaseModel):
    id: int
    run_id: int
    round: int
    arch_id: str
    architecture: dict[str, Any]
    accuracy: float | None
    predicted: dict[str, SearchPrediction]
    measured: dict[str, SearchMeasured] | None = Field(
        default=None, description="per device class, once measured")
    model_id: int | None
    verified: bool
    created_at: datetime
    updated_at: datetime


class SearchCandidatePatch(BaseModel):
    """Changes to a candidate; a field left out is unchanged. ``measured`` is merged by device
    class (null clears it); ``verified`` true needs measured figures."""

    measured: dict[Name, SearchMeasured] | None = Field(default=None, max_length=MAX_DEVICES)
    verified: StrictBool | None = Field(default=None, description="null: unchanged")
    model_id: Id | None = None
    accuracy: Fraction | None = None


class SearchRunIn(BaseModel):
    """A search run as it starts: its search space, device classes, the whole search config,
    the budgets per device class and the fit versions its latency models come from."""

    name: Annotated[str, Field(min_length=1, max_length=NAME_CHARS)]
    space: Annotated[str, Field(min_length=1, max_length=TAG_CHARS,
                                description="the search space (backbone), e.g. kws")]
    devices: list[Name] = Field(min_length=1, max_length=MAX_DEVICES,
                                description="device classes, e.g. virtual:nucleo-f446re")
    config: ConfigJSON = Field(default_factory=dict, description="the whole search config")
    budgets: dict[Name, SearchBudget] = Field(default_factory=dict, max_length=MAX_DEVICES)
    fit_versions: dict[Name, Name] = Field(
        default_factory=dict, max_length=MAX_DEVICES,
        description="the version of the fit (GET /api/v1/fits/{version}) used per device class")

    @model_validator(mode="after")
    def _keyed_by_devices(self) -> SearchRunIn:
        if len(set(self.devices)) != len(self.devices):
            raise ValueError("devices names a device class twice; name each once")
        _devices_named(self.devices, budgets=self.budgets, fit_versions=self.fit_versions)
        return self


class SearchRunOut(BaseModel):
    """A search run. ``epochs`` and ``candidates`` are there in GET /searches/{id} only
    (null elsewhere); the counts always are."""

    id: int
    name: str
    space: str
    devices: list[str]
    config: dict[str, Any]
    budgets: dict[str, SearchBudget]
    fit_versions: dict[str, str]
    state: SearchState
    error: str | None
    created_by: str = Field(description="the name of the token that created it")
    created_at: datetime
    updated_at: datetime
    result: dict[str, Any] | None = Field(
        default=None, description="what the run found, e.g. {arch_id, architecture, "
        "predicted}")
    n_epochs: int = 0
    n_candidates: int = 0
    n_verified: int = 0
    epochs: list[SearchEpochOut] | None = None
    candidates: list[SearchCandidateOut] | None = None


class SearchRunPatch(BaseModel):
    """Changes to a run; a field left out is unchanged (``error`` and ``result`` null: cleared).
    A finished run (done, failed) keeps its state; ``fit_versions`` replaces the mapping."""

    state: SearchState | None = Field(default=None, description="null: unchanged")
    error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS)
    result: ConfigJSON | None = None
    fit_versions: dict[Name, Name] | None = Field(default=None, max_length=MAX_DEVICES)
