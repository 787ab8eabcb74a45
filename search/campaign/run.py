"""The entry point of a campaign: :func:`run_campaign` checks its options, finds or starts
its server, and runs it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from profiler_client.client import Client
from profiler_client.settings import client_settings
from search.campaign.errors import CampaignError
from search.campaign.local import LOCAL_DASHBOARD, LOCAL_DATABASE, LocalService, local_serve_hint
from search.campaign.pipeline import CampaignRun
from search.campaign.plan import check_devices, default_name, default_out
from search.campaign.progress import Observer, observers
from search.campaign.result import CampaignResult, write_result
from search.campaign.server import server_check
from search.network import Shape
from search.spaces import SearchSpace, get_space

DEFAULT_RUNS = 3  # timed inferences per job (the median is reported)
DEFAULT_WARMUP = 1  # untimed inferences before them (fills the M7's caches)
POLL_S = 1.0  # seconds between two looks at the jobs still running


def run_campaign(space: str | SearchSpace, n: int, devices: Sequence[str], *,
                 client: Client | None = None, seed: int = 0, out: str | Path | None = None,
                 jobs: int | None = None, runs: int = DEFAULT_RUNS,
                 warmup: int = DEFAULT_WARMUP, kernels: str = "dsp",
                 max_width: int | None = None, input_size: int | None = None,
                 name: str | None = None, weight_seed: int = 0, retry_failed: bool = False,
                 wait: bool = True, timeout_s: float | None = None, poll_s: float = POLL_S,
                 local: bool = False, progress: bool = False,
                 on_event: Observer | None = None) -> CampaignResult:
    """Run (or resume) a profiling campaign; returns its :class:`CampaignResult`.

    ``space``: ``kws``, ``vww`` or ``ad``; ``n`` architectures sampled uniformly with
    ``seed`` (``max_width``: only width choices up to that many channels, for small models;
    ``input_size``: vww's input side). ``devices``: device classes, e.g.
    ``virtual:nucleo-f446re``. ``client``: the server (default: ``Client()``, i.e.
    ``$MCUPROF_SERVER``); ``local``: instead, a server on SQLite in ``out`` and one virtual
    agent per device, started for the campaign (``mcuprof demo`` as a child process:
    :class:`~search.campaign.local.LocalService`). ``out``: the campaign's directory (default
    ``campaigns/<name>``; the journal, the models and ``result.json``). ``jobs``: conversion
    worker processes (default: the CPU count). ``runs``/``warmup``/``kernels``: each job's
    settings. ``wait=False`` submits and returns (rerun to collect); ``timeout_s`` bounds the
    wait (:class:`CampaignTimeoutError`; the jobs go on). ``progress``: rich progress bars on
    stderr; ``on_event``: a callback for every :class:`CampaignEvent`.

    Rerunning with the same space, seed and ``max_width`` resumes: see the module docstring.
    Raises :class:`ServerNotFoundError` when the server does not answer.
    """
    sp = get_space(space)
    if n < 1:
        raise CampaignError(f"--n {n}: a campaign needs at least 1 model (a line at least 5)")
    if jobs is not None and jobs < 1:
        raise CampaignError(f"--jobs {jobs}: use at least 1 conversion worker")
    if kernels not in ("dsp", "ref"):
        raise CampaignError(f"kernels must be dsp or ref, not {kernels!r}")
    if not 1 <= runs <= 1000 or not 0 <= warmup <= 100:
        raise CampaignError(f"runs must be 1..1000 and warmup 0..100 (got {runs}, {warmup})")
    input_shape: Shape | None = None
    if input_size is not None:
        if not sp.variable_input:
            raise CampaignError(f"only the vww space takes a chosen input size; {sp.name} "
                                f"inputs are fixed ({'x'.join(map(str, sp.input_shape))})")
        input_shape = (input_size, input_size, sp.input_shape[2])
        sp.check_input_shape(input_shape)
    classes = check_devices(devices)
    name = name or default_name(sp.name, seed, max_width=max_width, input_size=input_size)
    if not name or any(c in name for c in "=/\\") or name.startswith("."):
        raise CampaignError(f"campaign name {name!r}: use letters, digits, '-' and '_'")
    out_dir = Path(out) if out is not None else default_out(name)
    # Without waiting, --local boards would be stopped at once: the jobs wait in the
    # campaign's database for the next run's.
    stack = LocalService(out_dir, classes, boards=wait) if local else None
    own_client = False
    interrupted = False
    try:
        if stack is not None:
            client = stack.start()
            server_key = f"local:{(out_dir / LOCAL_DATABASE).resolve()}"
            dashboard, label = LOCAL_DASHBOARD, f"local ({out_dir / LOCAL_DATABASE})"
        else:
            if client is None:
                client, own_client = Client(), True
            server_check(client, default=own_client and client_settings().server is None)
            server_key = dashboard = label = client.url
        with observers(progress, on_event) as emit:
            campaign = CampaignRun(
                space=sp, n=n, devices=classes, client=client, seed=seed, out=out_dir,
                name=name, workers=jobs or os.cpu_count() or 1, runs=runs, warmup=warmup,
                kernels=kernels, max_width=max_width, input_shape=input_shape,
                weight_seed=weight_seed, retry_failed=retry_failed, server_key=server_key,
                poll_s=poll_s, timeout_s=timeout_s, observer=emit, check_boards=not local,
                dashboard=dashboard, server_label=label,
                check_local=stack.check if stack is not None else None)
            result = campaign.run(wait=wait)
        if local:
            result.serve_hint = local_serve_hint(out_dir)
        write_result(result)
        return result
    except KeyboardInterrupt:
        interrupted = True  # the boards release their jobs at once; a rerun takes them
        raise
    finally:
        if stack is not None:
            stack.stop(hurry=interrupted)
        if own_client and client is not None:
            client.close()
