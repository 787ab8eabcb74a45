"""``mcuprof run``: compile a model for a board, run it, and gather one result.

The result dict is a contract (``mcuprof run --json``; the service stores the same fields):
board, output, output_shape, cycles, cycles_per_run, latency_ms, energy_mj, energy_source,
arena_bytes, plan_bytes, ops, macs, layers[index, op, macs, ops, cycles], and for a virtual
twin's cycle-model cycles its stated error against silicon (error_band_pct, error_band_basis,
error_band_label: ``bench_firmware.backends.virtual.error_band``; None otherwise).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from bench_firmware.backends.virtual.error_band import band_of
from bench_firmware.boards import Board, get_board
from bench_firmware.compiler import Plan, compile_model
from bench_firmware.errors import McuprofError

_NP = {"int8": np.int8, "float32": np.float32}


def make_input(plan: Plan, input_path: Path | None, seed: int = 0) -> np.ndarray:
    """The input tensor: from a .npy file (checked against the model) or seeded random."""
    dtype = _NP[plan.input_dtype]
    shape = tuple(plan.input_shape)
    if input_path is None:
        rng = np.random.default_rng(seed)
        if plan.input_dtype == "int8":
            return rng.integers(-128, 128, size=shape, dtype=np.int8)
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    try:
        x = np.load(input_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise McuprofError(f"cannot read input {input_path} as .npy: {e}") from e
    if x.dtype != dtype:
        raise McuprofError(f"input {input_path} is {x.dtype}; the model takes {plan.input_dtype} "
                           f"(save it with np.save(path, x.astype(np.{plan.input_dtype})))")
    if x.size != int(np.prod(shape)):
        raise McuprofError(f"input {input_path} has shape {list(x.shape)}; the model takes "
                           f"{list(shape)}")
    return x.reshape(shape)


def decode_output(plan: Plan, raw: bytes) -> list[Any]:
    values = np.frombuffer(raw, dtype=_NP[plan.output_dtype])
    return [float(v) for v in values] if plan.output_dtype == "float32" else values.tolist()


def build_result(plan: Plan, output: list[Any], cycles_per_run: list[int] | None,
                 layer_cycles: list[int] | None, *, energy_mj: float | None = None,
                 cycle_source: str | None = None) -> dict[str, Any]:
    """The ``mcuprof run --json`` object. Energy is measured when a monitor gave
    ``energy_mj``, else modeled as the board's active power × latency."""
    board: Board = plan.board
    cycles = int(statistics.median(cycles_per_run)) if cycles_per_run else None
    latency_ms = board.cycles_to_ms(cycles) if cycles is not None and board.clock_hz else None
    energy_source = "measured" if energy_mj is not None else None
    if energy_mj is None and latency_ms is not None and board.active_power_mw is not None:
        energy_mj = board.active_power_mw * latency_ms / 1000.0  # mW × ms = µJ; / 1000 → mJ
        energy_source = "modeled"
    layers = []
    for i, layer in enumerate(plan.layers):
        entry = layer.as_dict()
        cyc = layer_cycles[i] if layer_cycles and i < len(layer_cycles) else None
        entry["cycles"] = cyc
        entry["mac_per_cycle"] = layer.macs / cyc if cyc and layer.macs else None
        layers.append(entry)
    in_layers = sum(layer_cycles) if layer_cycles else None
    band = band_of(board.name, cycle_source) if cycles is not None else None
    return {
        "board": board.name,
        "model_id": plan.model_id,
        "output": output,
        "output_shape": list(plan.output_shape),
        "cycles": cycles,
        "cycles_per_run": cycles_per_run or [],
        "cycles_min": min(cycles_per_run) if cycles_per_run else None,
        "cycles_max": max(cycles_per_run) if cycles_per_run else None,
        "cycle_source": cycle_source if cycles is not None else None,
        "overhead_cycles": (cycles_per_run[-1] - in_layers
                            if cycles_per_run and in_layers is not None else None),
        "latency_ms": latency_ms,
        "mac_per_cycle": plan.macs / cycles if cycles else None,
        "energy_mj": energy_mj,
        "energy_source": energy_source,
        "arena_bytes": plan.arena_bytes,
        "plan_bytes": plan.plan_bytes,
        "ops": plan.ops,
        "macs": plan.macs,
        "layers": layers,
        "error_band_pct": band.pct if band else None,
        "error_band_basis": band.basis if band else None,
        "error_band_label": band.label if band else None,
    }


CYCLE_SOURCES = {"virtual": "cycle-model", "renode": "renode-estimate", "pyocd": "dwt-cyccnt"}


def profile_model(model: bytes, device: str, *, input_path: Path | None = None, runs: int = 5,
                  warmup: int = 1, kernels: str = "dsp", name: str = "model") -> dict[str, Any]:
    """Compile ``model`` for ``device``'s board, run it there, and return the result object."""
    from bench_firmware.backends.registry import open_backend, parse_device

    backend_name, _, _ = parse_device(device)
    if runs < 1:
        raise McuprofError("--runs must be at least 1")
    if warmup < 0:
        raise McuprofError("--warmup must be 0 or more")
    board = get_board(device)
    plan = compile_model(model, board, name=name)
    x = make_input(plan, input_path)
    with open_backend(device) as backend:
        backend.load_plan(plan.data)
        run = backend.run(x.tobytes(), runs=runs, warmup=warmup, kernels=kernels)
    result = build_result(plan, decode_output(plan, run.output), run.cycles_per_run or None,
                          run.layer_cycles or None, energy_mj=run.energy_mj,
                          cycle_source=CYCLE_SOURCES.get(backend_name))
    result["device"] = device
    result["kernels"] = kernels
    return result
