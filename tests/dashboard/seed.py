"""Synthetic measurements for the fits, dashboard and benchmark: sampled models of three
backbones (``tests.fitting.synth``: DS-CNN KWS, DS-CNN AD, MobileNetV2 VWW layer lists with
cycles from a known per-layer cost model) stored through the database layer as models (with
a ``backbone`` tag and an analysis), done jobs and their measurements, on any device classes;
or one measurement reported through the queue's real result path (``report_via_queue``).

Bulk inserts (one ``INSERT ... RETURNING`` per table), so 10,000 measurements take seconds.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select

from bench_firmware.boards import get_board
from profiler_client.schemas import LayerOut, MeasurementIn
from service.db.engine import Database
from service.db.models import Job, Measurement, Model, ModelTag, utcnow
from service.fitting.frames import FIT_COLUMNS, MEASUREMENT_COLUMNS, FrameKind, apply_schema
from service.queue import Lease, enqueue, lease, register_agent, report_result
from tests.fitting import synth

F446 = "virtual:nucleo-f446re"
# Relative cycles of the same model on each board's core (the M7s dual-issue).
CORE_SPEED = {"nucleo-f446re": 1.0, "nucleo-l4r5zi": 1.03, "nucleo-f746zg": 0.62,
              "nucleo-f767zi": 0.6}
FRAME_SCHEMAS = {"fits": FIT_COLUMNS, "measurements": MEASUREMENT_COLUMNS}
ARENA_SLACK = 256  # bytes of alignment and scratch added to the largest activation pair


@dataclass(frozen=True)
class Seeded:
    model_ids: list[int]
    job_ids: list[int]
    measurement_ids: list[int]


@dataclass(frozen=True)
class SyntheticModel:
    """One sampled model: its layer list (with the generator's true cycles) and analysis."""

    name: str
    backbone: str | None
    chain: synth.Chain
    analysis: dict[str, Any]


def _analysis(chain: synth.Chain) -> dict[str, Any]:
    layers = [{k: v for k, v in layer.items() if k != "true_cycles"} | {"cycles": None}
              for layer in chain.layers]
    sizes = [int(np.prod(chain.input_shape))] + [int(np.prod(x["output_shape"]))
                                                 for x in layers]
    arena = max(a + b for a, b in zip(sizes, sizes[1:], strict=False)) + ARENA_SLACK
    return {
        "ops": sum(int(x["ops"]) for x in layers), "macs": sum(int(x["macs"]) for x in layers),
        "param_bytes": sum(int(x["param_bytes"]) for x in layers),
        "plan_bytes": sum(int(x["plan_bytes"]) for x in layers) + 256, "arena_bytes": arena,
        "input_shape": list(chain.input_shape), "output_shape": layers[-1]["output_shape"],
        "layers": layers, "input_dtype": "int8", "output_dtype": "int8",
    }


def sample_models(per_backbone: int, *, seed: int = 0,
                  backbones: Sequence[str] = ("kws", "ad", "vww"),
                  untagged: int = 0) -> list[SyntheticModel]:
    """``per_backbone`` sampled models of each backbone, plus ``untagged`` KWS-shaped
    models without a backbone tag."""
    rng = np.random.default_rng(seed)
    out = []
    for backbone in backbones:
        for i in range(per_backbone):
            chain = synth.BACKBONES[backbone](rng)
            out.append(SyntheticModel(f"{backbone}-s{seed}-{i:04d}", backbone, chain,
                                      _analysis(chain)))
    for i in range(untagged):
        chain = synth.kws(rng)
        out.append(SyntheticModel(f"untagged-s{seed}-{i:04d}", None, chain, _analysis(chain)))
    return out


def measurement_body(model: SyntheticModel, device: str, rng: np.random.Generator, *,
                     layer_noise: float = 0.02) -> dict[str, Any]:
    """A measurement of ``model`` on board ``device`` (full name or class) as an agent would
    report it: per-layer cycles from the known costs, scaled by the board's core speed."""
    board = get_board(device)
    speed = CORE_SPEED.get(board.name, 1.0)
    rec = synth.record(model.chain, measurement_id=0, model_id=0, backbone=model.backbone,
                       rng=rng, layer_noise=layer_noise, clock_hz=board.clock_hz)
    layers = [layer | {"cycles": max(1, int(layer["cycles"] * speed))}
              for layer in rec["layers"]]
    cycles = sum(layer["cycles"] for layer in layers) + int(synth.OVERHEAD_CYCLES)
    latency = board.cycles_to_ms(cycles)
    power = board.active_power_mw
    return {
        "device": device, "output": [], "output_shape": model.analysis["output_shape"],
        "cycles": cycles, "cycles_per_run": [cycles], "cycle_source": "cycle-model",
        "latency_ms": latency, "energy_mj": power * latency / 1000 if power else None,
        "energy_source": "modeled" if power else None,
        "arena_bytes": model.analysis["arena_bytes"], "plan_bytes": model.analysis["plan_bytes"],
        "flash_bytes": None, "ops": model.analysis["ops"], "macs": model.analysis["macs"],
        "layers": layers, "kernels": "dsp", "firmware_id": "synthetic", "plan_id": None,
        "serial_log": [],
    }


def store_models(db: Database, models: Sequence[SyntheticModel]) -> list[int]:
    """The models as rows (with their backbone tags); returns their ids in order."""
    now = utcnow()
    with db.transaction() as session:
        ids = list(session.scalars(insert(Model).returning(Model.id, sort_by_parameter_order=True),
                                   [{"sha256": hashlib.sha256(m.name.encode()).hexdigest(),
                                     "name": m.name, "size_bytes": 1000,
                                     "data": b"synthetic " + m.name.encode(),
                                     "analysis": m.analysis, "created_at": now}
                                    for m in models]))
        tags = [{"model_id": i, "key": "backbone", "value": m.backbone}
                for i, m in zip(ids, models, strict=True) if m.backbone]
        if tags:
            session.execute(insert(ModelTag), tags)
    return ids


def seed(db: Database, models: Sequence[SyntheticModel], devices: Sequence[str] = (F446,), *,
         model_ids: Sequence[int] | None = None, repeats: int = 1, seed: int = 0,
         layer_noise: float = 0.02) -> Seeded:
    """Store ``models`` (unless ``model_ids`` says they are stored) and ``repeats`` done
    jobs with measurements of each on every device class in ``devices``."""
    rng = np.random.default_rng(seed)
    ids = list(model_ids) if model_ids is not None else store_models(db, models)
    now = utcnow()
    bodies = []
    jobs = []
    for device in devices:
        for model_id, model in zip(ids, models, strict=True):
            for _ in range(repeats):
                bodies.append((model_id, device, measurement_body(model, device, rng,
                                                                  layer_noise=layer_noise)))
                jobs.append({"model_id": model_id, "device_class": device, "runs": 1,
                             "warmup": 0, "kernels": "dsp", "priority": 0, "state": "done",
                             "attempts": 1, "max_attempts": 3, "created_at": now,
                             "updated_at": now + timedelta(seconds=1)})
    with db.transaction() as session:
        job_ids = list(session.scalars(insert(Job).returning(Job.id,
                                                             sort_by_parameter_order=True),
                                       jobs)) if jobs else []
        rows = []
        for job_id, (model_id, device, body) in zip(job_ids, bodies, strict=True):
            rows.append({k: v for k, v in body.items() if k != "device"} | {
                "job_id": job_id, "lease_id": 0, "model_id": model_id,
                "device": f"{device}:seed-0", "device_class": device,
                "board": device.split(":")[1], "report_sha256": f"{job_id:064x}",
                "created_at": now})
        measurement_ids = list(session.scalars(
            insert(Measurement).returning(Measurement.id, sort_by_parameter_order=True),
            rows)) if rows else []
    return Seeded(ids, job_ids, measurement_ids)


def frame(data: bytes, kind: FrameKind, fmt: str = "parquet") -> pd.DataFrame:
    """An exported frame (CSV or Parquet bytes) with ``kind``'s column types, as
    ``service.fitting.read_csv`` / ``read_parquet`` read files."""
    if fmt == "csv":
        text = [c for c, t in FRAME_SCHEMAS[kind].items() if t == "str"]
        return apply_schema(pd.read_csv(io.BytesIO(data), dtype=dict.fromkeys(text, "str")),
                            kind)
    return apply_schema(pd.read_parquet(io.BytesIO(data)), kind)


def report_via_queue(db: Database, model_id: int, model: SyntheticModel, device_class: str,
                     *, seed: int = 0, agent: str = "seed-agent",
                     firmware_id: str | None = None) -> int:
    """One measurement stored the way an agent's report is (register, enqueue, lease,
    ``report_result``); returns its id."""
    device = f"{device_class}:{agent}-0"
    with db.transaction() as session:
        register_agent(session, agent, [device], version="test", lease_seconds=60.0)
        stored = session.get(Model, model_id)
        assert stored is not None
        enqueue(session, stored, [device_class], runs=1, warmup=0, kernels="dsp", priority=0,
                max_attempts=3)
    with db.transaction() as session:
        granted = lease(session, device, agent_name=agent, lease_seconds=60.0)
        assert isinstance(granted, Lease), granted
        body = measurement_body(model, device, np.random.default_rng(seed))
        if firmware_id is not None:
            body["firmware_id"] = firmware_id
        body["layers"] = [LayerOut.model_validate(x) for x in body["layers"]]
        job = report_result(session, granted.attempt.id, MeasurementIn.model_validate(body),
                            agent_name=agent)
    with db.read() as session:
        mid = session.scalar(select(Measurement.id).where(Measurement.job_id == job.id))
    assert mid is not None
    return int(mid)
