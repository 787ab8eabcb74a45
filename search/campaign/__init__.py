"""Profiling campaigns: sample, convert, upload, submit, wait, fit, report, resumably.

A *campaign* is what MicroNets did to show that latency is linear in op count (RQ1): ``n``
architectures sampled uniformly from one search space, converted to int8, profiled on every
target device, and one ``latency = a * ops + b`` line fitted per device. ::

    from profiler_client.client import Client
    from search.campaign import run_campaign

    with Client("http://127.0.0.1:8000") as api:
        result = run_campaign("kws", 100, ["virtual:nucleo-f446re", "virtual:nucleo-f746zg"],
                              client=api, seed=0, progress=True)
    print(result.report())
    result.fits["virtual:nucleo-f446re"].a_ms_per_op     # the stored fit (FitOut)
    result.frame()                                       # one row per measurement (pandas)

``mcuprof campaign`` (``search/cli_campaign.py``) is a thin layer over :func:`run_campaign`.

**Pipeline.** Conversion runs in spawned worker processes (``search.convert.run_job``, the
same code and sidecars as ``mcuprof sample``; TensorFlow is imported in the workers only);
the main process uploads each model as soon as it is converted (tags ``backbone=<space>``,
``arch=<id>``, ``campaign=<name>``) and submits one job per device, so the boards work
while later models are still converting. Then it polls until every job has finished,
reads the measurements, and asks the server for the stored fits (``GET /api/v1/fits``).

**Resumability.** Everything that happened is appended to a journal, ``<out>/state.jsonl``,
one JSON object per line, *after* it happened: the campaign's identity (space, seed,
sub-space, input shape), then ``converted`` (name, sha256), ``uploaded`` (server, model id),
``submitted`` (server, device, job id), ``finished`` (job state and error) and the failures.
Appending is atomic enough for a crash (a torn last line is dropped on the next load), and
replaying the journal gives the state back. A rerun of the same command therefore

- reuses converted models (their ``.tflite`` + sidecar in ``<out>/models``, checked by
  hash as ``mcuprof sample`` does),
- reuses uploads after checking that the server still has them (one listing of the models
  tagged ``campaign=<name>``; a wiped database or another server gets fresh uploads),
- never submits a model twice for a device: before submitting, it asks the server for the
  model's jobs and reuses one for the same device and kernels (queued, running, done, or
  failed). That also covers the window between the server accepting a job and the journal
  recording it, and models someone else already profiled,
- and collects jobs that finished while it was not running.

Models that fail to convert, are refused by the server, or whose jobs fail are recorded
and reported at the end; ``retry_failed`` tries them again.

**Modules.** :mod:`~search.campaign.plan` (the sampled models, name, folder and devices),
:mod:`~search.campaign.journal` (the journal), :mod:`~search.campaign.progress` (events and
their displays), :mod:`~search.campaign.server` (what the campaign asks its server, through
``profiler_client``), :mod:`~search.campaign.pipeline` (one run: convert, upload, submit,
wait, collect), :mod:`~search.campaign.result` (the result, its report and
``result.json``), :mod:`~search.campaign.local` (``--local``: ``mcuprof demo`` as a child
process) and :mod:`~search.campaign.run` (:func:`run_campaign`). Every public name is
importable from ``search.campaign``.
"""

from __future__ import annotations

from search.campaign.errors import CampaignError, CampaignTimeoutError, ServerNotFoundError
from search.campaign.journal import (
    IDENTITY_KEYS,
    LOCK_FILE,
    STATE_FILE,
    STATE_VERSION,
    CampaignState,
    JobRecord,
    ModelRecord,
)
from search.campaign.local import (
    LOCAL_AGENT_LOG,
    LOCAL_DASHBOARD,
    LOCAL_DATABASE,
    LOCAL_STOP_GRACE_S,
    LocalService,
    local_serve_hint,
)
from search.campaign.pipeline import MODELS_DIR, REUSE_ORDER, CampaignRun
from search.campaign.plan import (
    check_devices,
    default_name,
    default_out,
    plan_models,
    restrict_widths,
)
from search.campaign.progress import CampaignEvent, Echo, LineProgress, Observer, RichProgress
from search.campaign.result import (
    RESULT_FILE,
    CampaignResult,
    DeviceResult,
    ModelResult,
    write_result,
)
from search.campaign.run import DEFAULT_RUNS, DEFAULT_WARMUP, POLL_S, run_campaign
from search.campaign.server import (
    CAMPAIGN_TAG,
    GET_EACH_MAX,
    JOBS_PAGE,
    MEASUREMENTS_PAGE,
    server_check,
)

__all__ = [
    "CAMPAIGN_TAG", "DEFAULT_RUNS", "DEFAULT_WARMUP", "GET_EACH_MAX", "IDENTITY_KEYS",
    "JOBS_PAGE", "LOCAL_AGENT_LOG", "LOCAL_DASHBOARD", "LOCAL_DATABASE", "LOCAL_STOP_GRACE_S",
    "LOCK_FILE", "MEASUREMENTS_PAGE", "MODELS_DIR", "POLL_S", "RESULT_FILE", "REUSE_ORDER",
    "STATE_FILE", "STATE_VERSION", "CampaignError", "CampaignEvent", "CampaignResult",
    "CampaignRun", "CampaignState", "CampaignTimeoutError", "DeviceResult", "Echo",
    "JobRecord", "LineProgress", "LocalService", "ModelRecord", "ModelResult", "Observer",
    "RichProgress", "ServerNotFoundError", "check_devices", "default_name", "default_out",
    "local_serve_hint", "plan_models", "restrict_widths", "run_campaign", "server_check",
    "write_result",
]
