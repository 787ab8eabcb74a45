"""``mcuprof campaign``: sample, convert, submit, wait and fit, resumably.

::

    mcuprof campaign --space kws --n 100 --device virtual:nucleo-f446re \\
        --device virtual:nucleo-f746zg [--seed 0] [--server URL] [--token T] [--out DIR] \\
        [--jobs N] [--runs R] [--max-width W] [--local]

A thin layer over :func:`search.campaign.run_campaign`: options in, progress on stderr
(rich bars on a terminal, a few plain lines otherwise), the report (the fit per device and
its plot URL) on stdout. Exit status 0 when every model was profiled on every device, 1
when some failed (listed), 2 for a campaign that could not run, 130 when interrupted (the
journal keeps what was done; rerunning the same command resumes).
Declared in ``pyproject.toml`` (``mcuprof.commands``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from search.campaign import DEFAULT_RUNS, DEFAULT_WARMUP

INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports it


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


@click.command("campaign")
@click.option("--space", required=True, help="Search space to sample: kws, vww or ad.")
@click.option("--n", "n", type=int, default=100, show_default=True,
              help="How many architectures to sample and profile.")
@click.option("--device", "devices", multiple=True, required=True,
              help="Device class to profile on, e.g. virtual:nucleo-f446re (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Sampling seed: the same seed gives the same architectures.")
@click.option("--server", default=None,
              help="mcuprof server URL [default: $MCUPROF_SERVER, else "
                   "http://127.0.0.1:8000].")
@click.option("--token", default=None, help="API token [default: $MCUPROF_TOKEN].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Campaign directory: journal, models, result.json "
                   "[default: campaigns/<space>-seed<seed>[-w<max width>]].")
@click.option("--jobs", type=int, default=None,
              help="Worker processes converting in parallel [default: CPU count].")
@click.option("--runs", type=int, default=DEFAULT_RUNS, show_default=True,
              help="Timed inferences per job (the median is reported).")
@click.option("--warmup", type=int, default=DEFAULT_WARMUP, show_default=True,
              help="Untimed inferences before them.")
@click.option("--kernels", type=click.Choice(["dsp", "ref"]), default="dsp",
              show_default=True, help="Kernel path the firmware runs.")
@click.option("--max-width", type=int, default=None,
              help="Sample only width choices up to this many channels (small, fast models; "
                   "e.g. 16).")
@click.option("--input-size", type=int, default=None,
              help="vww only: side of the square grayscale input [default: 50].")
@click.option("--name", default=None,
              help="Campaign name, tagged on every model as campaign=NAME "
                   "[default: the --out folder's default name].")
@click.option("--local", is_flag=True,
              help="Run a server (SQLite in --out) and one virtual board per --device for "
                   "this campaign (`mcuprof demo`, stopped at the end) instead of using a "
                   "server.")
@click.option("--retry-failed", is_flag=True,
              help="Convert and submit again what failed in an earlier run.")
@click.option("--no-wait", is_flag=True,
              help="Submit and exit; rerun the same command later to collect the results.")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="Stop waiting after this many seconds (the jobs go on; rerun to collect).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (as in DIR/result.json) instead of the report.")
def campaign_cmd(space: str, n: int, devices: tuple[str, ...], seed: int, server: str | None,
                 token: str | None, out: Path | None, jobs: int | None, runs: int,
                 warmup: int, kernels: str, max_width: int | None, input_size: int | None,
                 name: str | None, local: bool, retry_failed: bool, no_wait: bool,
                 timeout_s: float | None, as_json: bool) -> None:
    """Profile N architectures sampled from a search space on every device, and fit
    latency = a * ops + b per device (MicroNets).

    Samples, converts to int8 in parallel worker processes, uploads with the tags
    backbone=SPACE, arch=ID and campaign=NAME, submits one job per model and device,
    waits, and prints each device's stored fit (r2, +-10% accuracy, MAPE, n) with the URL
    of its latency-vs-ops plot. Interrupted, it resumes when run again with the same
    options: converted models, uploads and jobs are reused, and no model is submitted
    twice for a device.
    """
    from profiler_client.client import Client
    from profiler_client.settings import client_settings
    from search.campaign import (
        CampaignError,
        LineProgress,
        ServerNotFoundError,
        check_devices,
        run_campaign,
        server_check,
    )

    if server is not None and local:
        raise click.UsageError("--local runs its own server; leave out --server")
    try:
        classes = check_devices(devices)
    except CampaignError as e:
        raise click.BadParameter(str(e), param_hint="--device") from e
    client: Client | None = None
    if not local:
        default = server is None and client_settings().server is None
        client = Client(server, token, retries=0 if default else 2)
        try:
            server_check(client, default=default)
        except ServerNotFoundError as e:
            client.close()
            interactive = sys.stdin.isatty() and sys.stderr.isatty()
            if not (default and interactive and all(d.startswith("virtual:") for d in classes)
                    and click.confirm(f"No mcuprof server answers at {client.url}. Run this "
                                      f"campaign on a server and virtual boards of its own "
                                      f"(--local)?", default=True, err=True)):
                raise e
            local, client = True, None
        if client is not None:  # the check used no retries; the campaign gets the usual ones
            client.close()
            client = Client(server, token)
    tty = sys.stderr.isatty()
    try:
        result = run_campaign(
            space, n, classes, client=client, seed=seed, out=out, jobs=jobs, runs=runs,
            warmup=warmup, kernels=kernels, max_width=max_width, input_size=input_size,
            name=name, retry_failed=retry_failed, wait=not no_wait, timeout_s=timeout_s,
            local=local, progress=tty, on_event=None if tty else LineProgress(_echo_err))
    except KeyboardInterrupt:
        click.echo("interrupted; what was done is in the campaign's state.jsonl: run the same "
                   "command again to resume (jobs already submitted keep running on the "
                   "server)", err=True)
        sys.exit(INTERRUPTED_STATUS)
    finally:
        if client is not None:
            client.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
    else:
        click.echo(result.report())
    problems = [f"conversion failed: {name}: {error}" for name, error in
                result.conversion_failures]
    problems += [f"refused by the server: {name}: {error}" for name, error in
                 result.upload_failures]
    problems += [f"job {job_id} failed: {name} on {device}: {error}"
                 for name, device, job_id, error in result.job_failures]
    for line in problems:
        click.echo(line, err=True)
    if not result.complete:
        click.echo("some jobs have not finished: run the same command again to collect them",
                   err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s), listed above; --retry-failed tries them again",
                   err=True)
        sys.exit(1)

