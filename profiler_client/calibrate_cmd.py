"""``mcuprof calibrate --device pyocd:<board>:<probe>``: a twin against its real board.

Runs the calibration set (the packaged microbenchmarks, one per instruction class / memory
path, then the packaged sample networks; ``--model`` names networks to run instead) on the
physical board and on its twin ``virtual:<board>`` (``bench_firmware.calibration``), prints
twin-vs-silicon cycles per network, per operator type and per microbenchmark, the factor and
the error of a calibrated figure, and uploads the result to the server (``POST
/api/v1/calibrations``): from then on the twins of that board report calibrated cycles there,
the fits predict with them, and the device page shows the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from bench_firmware.backends.base import BoardBackend
from bench_firmware.calibration import (
    DEFAULT_NETWORKS,
    MICROBENCHMARK,
    CalibrationModel,
    NetworkResult,
    Summary,
    calibrate,
    default_models,
    summarise,
)
from profiler_client.client import Client
from profiler_client.commands import _server_options
from profiler_client.schemas import CalibrationIn, CalibrationNetworkIn, CalibrationOut


def calibration_body(device: str, results: Sequence[NetworkResult], *, kernels: str,
                     firmware_id: str | None = None) -> CalibrationIn:
    """The upload for these results."""
    return CalibrationIn(device=device, kernels=kernels,  # type: ignore[arg-type]
                         firmware_id=firmware_id,
                         networks=[CalibrationNetworkIn.model_validate(r.as_dict())
                                   for r in results])


def run_calibration(device: str, models: Sequence[CalibrationModel | tuple[str, bytes]], *,
                    runs: int,
                    warmup: int, kernels: str, client: Client | None,
                    open_board: Callable[[str], BoardBackend] | None = None,
                    progress: Callable[[str], None] | None = None
                    ) -> tuple[list[NetworkResult], Summary, CalibrationOut | None]:
    """Calibrate and, with a ``client``, upload: the results, what they state, and the stored
    calibration."""
    results = calibrate(device, models, runs=runs, warmup=warmup, kernels=kernels,
                        open_board=open_board, progress=progress)
    summary = summarise(results)
    stored = (client.upload_calibration(calibration_body(device, results, kernels=kernels))
              if client is not None else None)
    return results, summary, stored


def _print(device: str, results: Sequence[NetworkResult], summary: Summary,
           stored: CalibrationOut | None) -> None:
    width = max(len("network"), *(len(r.name) for r in results))
    click.echo(f"{device} (DWT CYCCNT) against its twin (cycle model)")
    benches = [r for r in results if r.kind == MICROBENCHMARK]
    networks = [r for r in results if r.kind != MICROBENCHMARK]
    if benches:
        click.echo("microbenchmarks (one instruction class / memory path each):")
        click.echo(f"{'microbenchmark':<{width}}  {'silicon cycles':>15}  {'twin cycles':>15}  "
                   f"{'twin / silicon':>14}  exercises")
        for r in benches:
            click.echo(f"{r.name:<{width}}  {r.silicon_cycles:>15,}  {r.twin_cycles:>15,}  "
                       f"{r.ratio:>14.3f}  {r.exercises or ''}")
    if networks:
        click.echo(f"{'network':<{width}}  {'silicon cycles':>15}  {'twin cycles':>15}  "
                   f"{'twin vs silicon':>15}")
    for r in networks:
        click.echo(f"{r.name:<{width}}  {r.silicon_cycles:>15,}  {r.twin_cycles:>15,}  "
                   f"{r.error:>+15.1%}")
    if summary.op_errors:
        click.echo("per operator type (the networks' layers):")
        for op, err in summary.op_errors.items():
            click.echo(f"  {op:<24} twin vs silicon {err:+.1%}")
    how = ("leave-one-out over the networks" if summary.held_out
           else "one network: nothing held out, this is the uncalibrated error")
    click.echo(f"calibration factor {summary.factor:.4f} (silicon / twin cycles, median); "
               f"calibrated error ±{summary.error_pct:g} % ({how}); uncalibrated twin "
               f"±{summary.raw_error_pct:g} %")
    if stored is not None:
        click.echo(f"stored as calibration {stored.id} of {stored.board} "
                   f"({stored.created_at:%Y-%m-%d %H:%M} UTC): twins of {stored.board} now "
                   f"report calibrated cycles")


@click.command()
@click.option("--device", required=True,
              help="The physical board: pyocd:<board>:<probe unique id>, e.g. "
                   "pyocd:nucleo-f446re:066DFF535155878281123456.")
@click.option("--model", "models", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .tflite network to calibrate with (repeatable) [default: the packaged "
                   "microbenchmarks, one per instruction class / memory path, then the "
                   f"sample networks {', '.join(DEFAULT_NETWORKS)}].")
@click.option("--runs", default=3, show_default=True, help="Timed inferences per network.")
@click.option("--warmup", default=1, show_default=True, help="Untimed inferences first.")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default="dsp", show_default=True)
@click.option("--no-upload", is_flag=True, help="Print the comparison; do not store it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_server_options
def calibrate_cmd(device: str, models: tuple[Path, ...], runs: int, warmup: int, kernels: str,
                  no_upload: bool, as_json: bool, server: str | None,
                  token: str | None) -> None:
    """Calibrate a twin against its real board: the same microbenchmarks and networks on
    both, twin-vs-silicon cycles per microbenchmark, network and operator type, uploaded so
    the board's twins report calibrated cycles."""
    chosen: list[CalibrationModel] = ([CalibrationModel(p.name, p.read_bytes()) for p in models]
                                      if models else default_models())

    def progress(text: str) -> None:
        click.echo(f"running {text}", err=True)

    if no_upload:
        results, summary, stored = run_calibration(device, chosen, runs=runs, warmup=warmup,
                                                   kernels=kernels, client=None,
                                                   progress=progress)
    else:
        with Client(server, token) as api:
            api.whoami()  # a wrong server or token fails before the boards are run
            results, summary, stored = run_calibration(device, chosen, runs=runs,
                                                       warmup=warmup, kernels=kernels,
                                                       client=api, progress=progress)
    if as_json:
        click.echo(json.dumps({"device": device, "networks": [r.as_dict() for r in results]}
                              | summary.as_dict()
                              | {"calibration_id": stored.id if stored else None}))
        return
    _print(device, results, summary, stored)


__all__ = ["calibrate_cmd", "calibration_body", "run_calibration"]
