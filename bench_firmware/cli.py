"""Local commands of the ``mcuprof`` CLI: analyze, compile, run, firmware build.

Everything here works without a server. ``profiler_client.cli`` mounts these commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bench_firmware.boards import BOARDS, HOST, get_board
from bench_firmware.errors import McuprofError


def _read_model(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise McuprofError(f"cannot read model {path}: {e.strerror}") from e


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _print_layers(layers: list[dict[str, Any]], with_cycles: bool = False) -> None:
    head = (f"{'#':>3}  {'op':<20} {'output':<18} {'MACs':>12} {'params':>10} {'plan':>10} "
            f"{'scratch':>8}")
    if with_cycles:
        head += f" {'cycles':>12} {'MAC/cyc':>8}"
    click.echo(head)
    for layer in layers:
        line = (f"{layer['index']:>3}  {layer['op']:<20} {str(layer.get('output_shape', '')):<18} "
                f"{layer['macs']:>12,} {layer.get('param_bytes', 0):>10,} "
                f"{layer.get('plan_bytes', 0):>10,} {layer.get('scratch_bytes', 0):>8,}")
        if with_cycles:
            cyc = layer.get("cycles")
            mpc = f"{layer['macs'] / cyc:.2f}" if cyc and layer["macs"] else "-"
            line += f" {cyc if cyc is not None else '-':>12} {mpc:>8}"
        click.echo(line)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--board", default="host", show_default=True,
              help="Board whose limits the plan is checked against.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def analyze(model: Path, board: str, as_json: bool) -> None:
    """Ops, MACs, parameters, plan and arena bytes of MODEL, per layer and in total."""
    from bench_firmware.compiler import compile_model

    data = _read_model(model)
    plan = compile_model(data, get_board(board), name=str(model), check_fit=False)
    summary = plan.summary()
    if as_json:
        click.echo(json.dumps({**summary, "tflite_bytes": len(data)}))
        return
    b = plan.board
    click.echo(f"{model}  (sha256 {plan.sha256[:16]}, board {b.name})")
    _print_layers(summary["layers"])  # type: ignore[arg-type]
    click.echo(f"total: {plan.ops:,} ops ({plan.macs:,} MACs), "
               f"params {_fmt_bytes(plan.param_bytes)}")
    fit_arena = "fits" if plan.arena_bytes <= b.arena_capacity else "DOES NOT FIT"
    fit_plan = "fits" if plan.plan_bytes <= b.model_region_bytes else "DOES NOT FIT"
    resident = [layer for layer in plan.layers if layer.resident_bytes]
    rest = "kernel scratch and weights copied to SRAM" if resident else "kernel scratch"
    click.echo(f"arena: {_fmt_bytes(plan.arena_bytes)} of {_fmt_bytes(b.arena_capacity)} "
               f"({fit_arena}; activations alone {_fmt_bytes(plan.activation_bytes)}, the rest "
               f"{rest})")
    if resident:
        click.echo(f"weights copied to SRAM when the plan loads (read there, not from flash): "
                   f"{_fmt_bytes(sum(layer.resident_bytes for layer in resident))}, layers "
                   f"{', '.join(str(layer.index) for layer in resident)}")
    click.echo(f"plan:  {_fmt_bytes(plan.plan_bytes)} of {_fmt_bytes(b.model_region_bytes)} "
               f"model region ({fit_plan}; {_plan_vs_tflite(plan.plan_bytes, len(data))})")


def _plan_vs_tflite(plan_bytes: int, tflite_bytes: int) -> str:
    """``.tflite 640.0 KiB, plan 0.96x``: what the board stores against the model file."""
    return f".tflite {_fmt_bytes(tflite_bytes)}, plan {plan_bytes / tflite_bytes:.2f}x"


@click.command(name="compile")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the plan.")
@click.option("--board", required=True, help="Target board, e.g. nucleo-f446re.")
@click.option("--mlperf-name", type=click.Choice(["kws01", "vww01", "ic01", "ad01", "none"]),
              default=None,
              help="EEMBC model name the board answers to `profile%` (the MLPerf Tiny runner "
                   "picks its test script by it). Default: from the preset or backbone tag in "
                   "the model's sidecar (MODEL with .json), else none (the model id).")
def compile_cmd(model: Path, output: Path, board: str, mlperf_name: str | None) -> None:
    """Compile MODEL into the plan BOARD would run."""
    from bench_firmware.compiler import compile_model

    name = _sidecar_mlperf_name(model) if mlperf_name is None else mlperf_name
    data = _read_model(model)
    plan = compile_model(data, get_board(board), name=str(model),
                         mlperf_name=None if name == "none" else name)
    output.write_bytes(plan.data)
    size = _plan_vs_tflite(plan.plan_bytes, len(data))
    click.echo(f"wrote {output}: {plan.plan_bytes:,} bytes ({size}), "
               f"arena {plan.arena_bytes:,} bytes, "
               f"model id {plan.model_id}, {len(plan.layers)} operators"
               + (f", MLPerf Tiny model {plan.mlperf_name}" if plan.mlperf_name else ""))


def _sidecar_mlperf_name(model: Path) -> str | None:
    """The EEMBC model name the sidecar next to ``model`` implies (its preset or tags)."""
    from bench_firmware.compiler import default_mlperf_name

    try:
        meta = json.loads(model.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    tags = meta.get("tags")
    preset = meta.get("preset")
    return default_mlperf_name(preset if isinstance(preset, str) else None,
                               tags if isinstance(tags, dict) else None)


@click.group()
def firmware() -> None:
    """Build the bench firmware."""


@firmware.command()
@click.option("--board", "boards", multiple=True, required=True,
              help="Board name, or 'all'. Repeatable.")
def build(boards: tuple[str, ...]) -> None:
    """Cross-compile the firmware image for a board (arm-none-eabi-gcc, -O2)."""
    from bench_firmware.build import build_firmware

    names = sorted(BOARDS) if "all" in boards else list(boards)
    for name in names:
        if name == "host":
            raise McuprofError("the host build is not a firmware image; tests build it themselves")
        image = build_firmware(get_board(name))
        click.echo(f"{name}: {image.bin}  text {image.text_bytes:,} data {image.data_bytes:,} "
                   f"bss {image.bss_bytes:,} bytes, flash {image.flash_bytes:,} bytes "
                   f"(firmware id {image.firmware_id})")


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--board", default="host", show_default=True,
              help="host, or a device such as virtual:nucleo-f446re.")
@click.option("--input", "input_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Input tensor as .npy (default: seeded random values).")
@click.option("--runs", default=5, show_default=True, help="Timed inferences.")
@click.option("--warmup", default=1, show_default=True, help="Untimed inferences first.")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default="dsp", show_default=True,
              help="Kernel path: the DSP-extension kernels or the portable reference ones.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def run(model: Path, board: str, input_path: Path | None, runs: int, warmup: int, kernels: str,
        as_json: bool) -> None:
    """Profile MODEL on one board, locally, without a server."""
    from bench_firmware.runner import profile_model

    result = profile_model(_read_model(model), board, input_path=input_path, runs=runs,
                           warmup=warmup, kernels=kernels, name=str(model))
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{model} on {result['device']} ({kernels} kernels)")
    if result["cycles"] is not None:
        n = len(result["cycles_per_run"])
        click.echo(f"cycles per run: min {result['cycles_min']:,}  median {result['cycles']:,}  "
                   f"max {result['cycles_max']:,}  ({n} runs, {result['cycle_source']})")
        click.echo(f"latency {result['latency_ms']:.3f} ms at the board clock, "
                   f"{result['mac_per_cycle']:.3f} MAC/cycle, runtime overhead "
                   f"{result['overhead_cycles']:,} cycles")
        if result.get("error_band_pct") is not None:
            click.echo(_band_line(result))
        if result["energy_mj"] is not None:
            click.echo(f"energy {result['energy_mj']:.4f} mJ per inference "
                       f"({result['energy_source']})")
    else:
        click.echo("host build: outputs only, no cycle figures")
    _print_layers(result["layers"], with_cycles=result["cycles"] is not None)
    resident = sum(int(layer.get("resident_bytes", 0)) for layer in result["layers"])
    kept = f" ({_fmt_bytes(resident)} of it weights kept in SRAM)" if resident else ""
    click.echo(f"arena {_fmt_bytes(result['arena_bytes'])}{kept}, "
               f"plan (flash) {_fmt_bytes(result['plan_bytes'])}")
    click.echo(f"output {result['output_shape']}: {result['output']}")


def _band_line(result: dict[str, Any]) -> str:
    """The twin's error band and the silicon latency range it implies."""
    pct = float(result["error_band_pct"])
    f = pct / 100.0
    ms = float(result["latency_ms"])
    return (f"{result['error_band_label']}: silicon latency within "
            f"{ms / (1.0 + f):.3f}-{ms / (1.0 - f):.3f} ms\n"
            f"  band from: {result['error_band_basis']}")


__all__ = ["HOST", "analyze", "compile_cmd", "firmware", "run"]
