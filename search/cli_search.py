"""``mcuprof search``: a latency-aware DNAS that closes the loop through the profiler.

::

    mcuprof search --space kws --data synth:kws --device virtual:nucleo-f446re \\
        --latency-ms 30 [--device D2] [--sram-kib auto] [--flash-kib auto] [--bits 8|w4] \\
        [--max-width 32] [--epochs 10] [--rounds 2] [--local] [--bootstrap 20] [--seed 0] \\
        [--out DIR] [--json]

A thin layer over :func:`search.dnas.run_search`: progress lines on stderr (epochs, the
temperature, the current architecture's costs against the budgets), the report (predicted
against profiled latency per device, SRAM and flash against their budgets, int8 accuracy) on
stdout. Exit status 0 when every budget was met on every device, 1 when a profiled model
broke one, 2 when the search could not run (the message says why and what to do).
Declared in ``pyproject.toml`` (``mcuprof.commands``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from search.dnas.search import SearchConfig


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def _kib(value: str, option: str) -> float | None:
    if value == "auto":
        return None
    try:
        v = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give KiB or auto", param_hint=option) from None
    if v <= 0:
        raise click.BadParameter(f"{value}: give a positive size", param_hint=option)
    return v


@click.command("search")
@click.option("--space", required=True, help="Search space: kws, vww or ad.")
@click.option("--data", required=True,
              help="synth:kws, synth:ad, synth:vww (generated offline), or a dataset "
                   "directory in its published layout (docs/data.md).")
@click.option("--device", "devices", multiple=True, required=True,
              help="Target device class, e.g. virtual:nucleo-f446re (repeatable: every one "
                   "constrains the search).")
@click.option("--latency-ms", type=float, default=None,
              help="Latency budget per inference on every device [default: none].")
@click.option("--sram-kib", default="auto", show_default=True,
              help="Arena budget in KiB; auto: what the board leaves for the arena.")
@click.option("--flash-kib", default="auto", show_default=True,
              help="Plan budget in KiB; auto: the board's model region.")
@click.option("--bits", type=click.Choice(["8", "w4"]), default="8", show_default=True,
              help="Weights: int8, or w4 (4-bit conv and dense weights, MicroNets' sub-byte "
                   "option; depthwise stays int8).")
@click.option("--max-width", type=int, default=None,
              help="Only width choices up to this many channels (small, fast searches).")
@click.option("--epochs", type=int, default=10, show_default=True,
              help="Search epochs (the first quarter trains weights only).")
@click.option("--final-epochs", type=int, default=20, show_default=True,
              help="Epochs training the found architecture from scratch.")
@click.option("--qat-epochs", type=int, default=3, show_default=True,
              help="Quantization-aware fine-tuning epochs after them.")
@click.option("--rounds", type=int, default=1, show_default=True,
              help="Search, export and profile this many times; each round after the first "
                   "searches on against the fits the profiling refined.")
@click.option("--per-class", type=int, default=None,
              help="Synthetic sets: utterances (or clips) per class for training.")
@click.option("--bootstrap", type=int, default=None,
              help="Where a device has no fit, profile this many sampled models of the space "
                   "first (a campaign) instead of stopping.")
@click.option("--local", is_flag=True,
              help="Run a server (SQLite in --out) and one virtual board per --device for "
                   "this search (`mcuprof demo`), instead of using a server.")
@click.option("--server", default=None,
              help="mcuprof server URL [default: $MCUPROF_SERVER, else "
                   "http://127.0.0.1:8000].")
@click.option("--token", default=None, help="API token [default: $MCUPROF_TOKEN].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed: the same seed and options give the same architecture.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run directory: journal, checkpoint, models, result.json "
                   "[default: searches/<space>-<config digest>].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def search_cmd(space: str, data: str, devices: tuple[str, ...], latency_ms: float | None,
               sram_kib: str, flash_kib: str, bits: str, max_width: int | None, epochs: int,
               final_epochs: int, qat_epochs: int, rounds: int, per_class: int | None,
               bootstrap: int | None, local: bool, server: str | None, token: str | None,
               seed: int, out: Path | None, as_json: bool) -> None:
    """Search SPACE for the most accurate network that meets the SRAM, flash and latency
    budgets of every --device, then train it, export it to int8 and profile it there.

    Latency comes from the server's fits for each device (the per-layer model, else the
    space's ops line); without one the search stops with the `mcuprof campaign` command that
    makes it (or runs it first with --bootstrap N). The report sets predicted against
    profiled latency (a virtual board's figure is its cycle model's, with its error band),
    and SRAM and flash against their budgets.
    """
    from bench_firmware.errors import McuprofError
    from profiler_client.client import Client
    from search.campaign.local import LocalService
    from search.dnas.run import check_config, run_search
    from search.errors import SearchError

    if server is not None and local:
        raise click.UsageError("--local runs its own server; leave out --server")
    cfg = SearchConfig(space=space, data=data, devices=list(devices), latency_ms=latency_ms,
                       sram_kib=_kib(sram_kib, "--sram-kib"),
                       flash_kib=_kib(flash_kib, "--flash-kib"), bits=bits,
                       max_width=max_width, epochs=epochs, final_epochs=final_epochs,
                       qat_epochs=qat_epochs, rounds=rounds, seed=seed, per_class=per_class,
                       bootstrap=bootstrap, out=str(out) if out is not None else None)
    try:
        check_config(cfg)
    except SearchError as e:
        _echo_err(f"error: {e}")
        sys.exit(2)
    if cfg.out is None:
        cfg.out = str(Path("searches") / f"{cfg.space}-{cfg.digest()}")
    stack = None
    try:
        # The data first: a wrong dataset layout stops the run before any server starts.
        from search.data import load_dataset

        _echo_err(f"loading {cfg.data}")
        data_set = load_dataset(cfg.data, cfg.space, seed=cfg.seed, per_class=cfg.per_class,
                                progress=_echo_err)
        if local:
            if not all(d.startswith("virtual:") for d in cfg.devices):
                raise SearchError("--local runs virtual boards only; name virtual:<board> "
                                  "devices, or use a server with agents")
            stack = LocalService(Path(cfg.out) / "server", cfg.devices, boards=True)
            _echo_err(f"starting a local server and virtual boards in {cfg.out}/server")
            client = stack.start()
        else:
            client = Client(server, token)
        with client:
            result = run_search(cfg, client=client, progress=_echo_err, data=data_set)
    except McuprofError as e:
        _echo_err(f"error: {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        _echo_err(f"interrupted: rerun the same command to resume ({cfg.out})")
        sys.exit(130)
    finally:
        if stack is not None:
            stack.stop()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(result.report())
    missed = [r for c in result.candidates[-1:] for r in c.report_rows(result.budgets)
              if r["latency_ok"] is False or r["sram_bytes"] > r["sram_budget"]
              or r["flash_bytes"] > r["flash_budget"]]
    sys.exit(1 if missed else 0)
