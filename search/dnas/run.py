"""``run_search``: a whole DNAS run against a server's fits, closed by profiling what it found.

1. The data (:func:`search.data.load_dataset`) and the budgets (board catalogue, user limits).
2. The latency models: the server's current fits for every target device (``GET /fits``
   through ``profiler_client``): the per-layer model where there is one, the space's ops
   line otherwise. Without either the run stops with the ``mcuprof campaign`` command that
   makes one, or, with ``bootstrap``, runs that campaign first over the widths the search can
   reach (:func:`search.campaign.run_campaign`).
3. The search (:mod:`search.dnas.search`), the repair to a budget-meeting architecture.
4. Final training with quantization-aware fine-tuning, int8 export with a sidecar
   (:mod:`search.dnas.train`).
5. Verification: the model is submitted to every target device, and the measured latency,
   arena and plan bytes are set against the predictions. The new measurements refit the
   service's models; with ``rounds`` > 1 the search continues (same supernet and logits,
   half the epochs) against the refitted models, and exports and verifies again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from profiler_client.client import Client
from search.dnas.costs import Budget, CostModel, budget_for
from search.dnas.latency import LatencyModel
from search.dnas.relaxed import relax
from search.dnas.search import (
    JOURNAL,
    RESULT,
    Candidate,
    SearchConfig,
    SearchResult,
    check_feasible,
    latency_margin,
    read_journal,
    repair,
    restricted_choices,
    search_architecture,
)
from search.errors import SearchError
from search.spaces import Architecture, get_space

Progress = Callable[[str], None]
VERIFY_RUNS = 3  # timed inferences per verification job
VERIFY_TIMEOUT_S = 1800.0


def check_config(cfg: SearchConfig) -> None:
    """Refuse a bad configuration before anything starts, with what to do."""
    get_space(cfg.space)  # UnknownNameError names the spaces
    from search.campaign import check_devices

    check_devices(cfg.devices)  # device classes as the server names them, known boards
    if cfg.bits not in ("8", "w4"):
        raise SearchError(f"--bits {cfg.bits}: use 8 or w4")
    if cfg.latency_ms is not None and cfg.latency_ms <= 0:
        raise SearchError(f"--latency-ms {cfg.latency_ms:g}: give a positive limit")
    if cfg.epochs < 1 or cfg.final_epochs < 0 or cfg.qat_epochs < 0 or cfg.rounds < 1:
        raise SearchError("--epochs and --rounds must be at least 1, final and QAT epochs "
                          "at least 0")
    if cfg.max_width is not None and cfg.max_width < 1:
        raise SearchError(f"--max-width {cfg.max_width}: give a channel count >= 1")


def campaign_command(cfg: SearchConfig, device: str, n: int = 20) -> str:
    """The command that profiles what a fit for ``device`` needs."""
    cmd = f"mcuprof campaign --space {cfg.space} --n {n} --device {device}"
    if cfg.max_width is not None:
        cmd += f" --max-width {cfg.max_width}"
    return cmd


def fetch_latency_models(client: Client, cfg: SearchConfig) -> dict[str, LatencyModel]:
    """Each device's latency model from the server; SearchError naming the campaign that
    would make a missing one."""
    out: dict[str, LatencyModel] = {}
    missing = []
    for device in cfg.devices:
        fits = client.fits(device=device, kernels=cfg.kernels)
        per_layer = [f for f in fits if f.kind == "per_layer" and f.current]
        lines = [f for f in fits if f.kind == "ops_line" and f.backbone == cfg.space
                 and f.current]
        line = lines[0] if lines else None
        if per_layer:
            out[device] = LatencyModel.from_fit(per_layer[0], line)
        elif line is not None:
            out[device] = LatencyModel.from_fit(line)
        else:
            missing.append(device)
    if missing:
        cmds = "; ".join(campaign_command(cfg, d) for d in missing)
        raise SearchError(
            f"the server has no latency fit ({cfg.kernels} kernels) for "
            f"{', '.join(missing)}: profile some {cfg.space} models there first: {cmds} "
            "(or rerun the search with --bootstrap 20 to do that now)")
    return out


def bootstrap(client: Client, cfg: SearchConfig, out: Path, progress: Progress) -> None:
    """Profile ``cfg.bootstrap`` sampled architectures of the (width-capped) space on every
    target device, as ``mcuprof campaign`` does, so fits exist."""
    from search.campaign import run_campaign

    assert cfg.bootstrap is not None
    progress(f"bootstrap: profiling {cfg.bootstrap} sampled {cfg.space} models on "
             f"{', '.join(cfg.devices)} for the fits")
    run_campaign(cfg.space, cfg.bootstrap, cfg.devices, client=client, seed=cfg.seed,
                 out=out / "bootstrap", max_width=cfg.max_width, kernels=cfg.kernels,
                 name=f"dnas-bootstrap-{cfg.space}-{cfg.seed}", timeout_s=VERIFY_TIMEOUT_S)


def verify(client: Client, cand: Candidate, cfg: SearchConfig, tags: dict[str, str],
           progress: Progress) -> None:
    """Submit the candidate's model to every target device and record the measurements."""
    assert cand.path is not None
    jobs = client.submit(cand.path, cfg.devices, tags=tags, runs=VERIFY_RUNS,
                         kernels=cfg.kernels, name=Path(cand.path).stem)
    cand.model_id = jobs[0].model_id
    progress(f"verifying {Path(cand.path).name} on {', '.join(cfg.devices)} "
             f"(jobs {', '.join(str(j.id) for j in jobs)})")
    finished = client.wait(jobs, timeout_s=VERIFY_TIMEOUT_S)
    for job in finished:
        if job.state != "done":
            cand.measured[job.device] = {"error": job.error or job.state,
                                               "job_id": job.id}
            continue
        got = client.results(f"job:{job.id}")
        if not got:
            continue
        m = got[0]
        cand.measured[job.device] = {
            "latency_ms": m.latency_ms, "arena_bytes": m.arena_bytes,
            "plan_bytes": m.plan_bytes, "cycles": m.cycles, "cycle_source": m.cycle_source,
            "job_id": job.id, "measurement_id": m.id, "error_band_pct": m.error_band_pct}


def write_model(out: Path, cand: Candidate, tflite: bytes, sidecar: dict[str, Any]) -> Path:
    """``<out>/models/<arch name>.tflite`` and its sidecar ``.json``."""
    folder = out / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cand.arch.name}-r{cand.round}.tflite"
    path.write_bytes(tflite)
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
    return path


def run_search(cfg: SearchConfig, *, client: Client | None = None,
               progress: Progress | None = None, data: Any = None) -> SearchResult:
    """Run (or resume) a DNAS search; see the module docstring. ``client``: the server
    (default ``Client()``); ``cfg.local`` is handled by the CLI (``--local`` starts a
    server for the run). ``data``: an already loaded :class:`search.data.Dataset`."""
    say = progress or (lambda _m: None)
    check_config(cfg)
    t_start = time.time()
    out = Path(cfg.out) if cfg.out else Path("searches") / f"{cfg.space}-{cfg.digest()}"
    out.mkdir(parents=True, exist_ok=True)
    ident = out / "config.json"
    if ident.is_file():
        old = json.loads(ident.read_text())
        if old != cfg.identity():
            raise SearchError(f"{out} holds a search with another configuration; choose "
                              "another --out or remove it")
    budgets = [budget_for(d, cfg.latency_ms, sram_kib=cfg.sram_kib, flash_kib=cfg.flash_kib)
               for d in cfg.devices]
    rs = relax(cfg.space, choices=restricted_choices(cfg.space, cfg.max_width))
    # Feasibility of memory budgets needs no fit: refuse early.
    check_feasible(CostModel(rs, budgets, {}, weight_bits=cfg.weight_bits),
                   [Budget(b.device, b.sram_bytes, b.flash_bytes, None) for b in budgets])
    own = client is None
    api = client or Client()
    try:
        try:
            latency = fetch_latency_models(api, cfg)
        except SearchError:
            if not cfg.bootstrap:
                raise
            bootstrap(api, cfg, out, say)
            latency = fetch_latency_models(api, cfg)
        # Without --latency-ms the latency is predicted and reported, with no hinge.
        model = CostModel(rs, budgets, latency, weight_bits=cfg.weight_bits)
        check_feasible(model, budgets)
        if not ident.is_file():  # the run begins: its folder now belongs to this config
            ident.write_text(json.dumps(cfg.identity(), indent=2, sort_keys=True))
        from search.dnas.record import Recorder

        recorder = Recorder(api, out, cfg, budgets, latency)
        say(f"search run: {recorder.url}")
        try:
            return _rounds(cfg, api, data, rs, budgets, latency, model, recorder, out,
                           t_start, say)
        except BaseException as e:
            why = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e) or repr(e)
            if not isinstance(e, KeyboardInterrupt):
                recorder.finish(None, error=why)
            raise
    finally:
        if own:
            api.close()


def _rounds(cfg: SearchConfig, api: Client, data: Any, rs: Any, budgets: list[Budget],
            latency: dict[str, LatencyModel], model: CostModel, recorder: Any, out: Path,
            t_start: float, say: Progress) -> SearchResult:
    """The search rounds: search, repair, train, export, verify (see the module docstring)."""
    if data is None:
        from search.data import load_dataset

        say(f"loading {cfg.data}")
        data = load_dataset(cfg.data, cfg.space, seed=cfg.seed, per_class=cfg.per_class,
                            progress=say)
    say(data.describe())
    data, norm = normalize(data)
    warnings: list[str] = []
    candidates: list[Candidate] = []
    epochs: list[dict[str, Any]] = []
    state = None
    offset = 0
    for rnd in range(1, cfg.rounds + 1):
        if rnd > 1:
            say(f"round {rnd}: refitted models")
            latency = corrected(fetch_latency_models(api, cfg), rs, candidates, say)
            model = CostModel(rs, budgets, latency, weight_bits=cfg.weight_bits)
            recorder.fits(latency)
        round_cfg = cfg if rnd == 1 else _refine(cfg)
        def on_epoch(rec: dict[str, Any], rnd: int = rnd) -> None:
            recorder.epoch(rnd, rec)

        arch, recs, state = search_architecture(
            round_cfg, data, model, out, start_epoch_offset=offset, state=state,
            progress=say, on_epoch=on_epoch)
        offset += round_cfg.epochs
        epochs.extend(r for r in recs if r not in epochs)
        # The round's result as first found (a resumed run's logits may have moved on).
        arch = _round_arch(out, rnd, arch)
        alpha = {n: v.numpy() for n, v in state.alpha.items()}
        margins = {b.device: latency_margin(model, b.device) for b in budgets}
        fixed = repair(model, arch, alpha, budgets, latency_margin=margins)
        if fixed != arch:
            say(f"{arch.name} breaks a budget; nearest that meets them: {fixed.name}")
        costs = model.arch_costs(fixed)
        warnings += [w for w in costs.warnings if w not in warnings]
        cand = Candidate(rnd, fixed, costs)
        cand_path = out / "models" / f"{fixed.name}-r{rnd}.tflite"
        if cand_path.is_file():
            say(f"reusing {cand_path}")
            sidecar = json.loads(cand_path.with_suffix(".json").read_text())
            cand.accuracy = dict(sidecar.get("dnas", {}).get("accuracy", {}))
            cand.path = str(cand_path)
        else:
            trained = _train(cfg, data, cand, say)
            cand.accuracy = trained.int8_accuracy
            sidecar = _sidecar(cfg, cand, budgets, latency, trained, data)
            sidecar["dnas"]["input_normalization"] = norm
            cand.path = str(write_model(out, cand, trained.tflite, sidecar))
        recorder.candidate(cand, cand.accuracy.get(data.test_name), latency)
        tags = {"backbone": cfg.space, "arch": fixed.id, "search": out.name,
                "round": str(rnd)}
        verify(api, cand, cfg, tags, say)
        recorder.verified(cand)
        candidates.append(cand)
        say(_round_line(cand, budgets))
    result = SearchResult(cfg, budgets, candidates, epochs, warnings,
                          {d: m.describe() for d, m in latency.items()},
                          time.time() - t_start, str(out))
    (out / RESULT).write_text(json.dumps(result.to_dict(), indent=2, default=str))
    recorder.finish({"arch_id": result.best.arch.id, "path": result.best.path,
                     "round": result.best.round, "rounds": len(candidates)})
    return result


def corrected(latency: dict[str, LatencyModel], rs: Any, profiled: list[Candidate],
              say: Progress) -> dict[str, LatencyModel]:
    """The refitted models, each scaled by what this search's profiled models say of it.

    A fit is made on the space at large (sampled models); the search then concentrates
    where the loss pulls it, and a fit can be off there by more than its cross-validated
    error (the per-layer features leave out, e.g., the weight copies into SRAM on the
    Cortex-M4 boards). The models the earlier rounds exported and profiled are the nearest
    evidence: the refitted model is scaled by the geometric mean of their measured /
    predicted ratios on that device (recorded as ``scale`` in the sidecar and the result)."""
    import math
    from dataclasses import replace

    from search.dnas.relaxed import one_hot, terms

    out = {}
    for device, model in latency.items():
        logs = []
        for cand in profiled:
            meas = cand.measured.get(device, {}).get("latency_ms")
            if not meas:
                continue
            pred = float(model.latency_ms(terms(rs, one_hot(rs, cand.arch.choices))))
            if pred > 0:
                logs.append(math.log(meas / pred))
        scale = math.exp(sum(logs) / len(logs)) if logs else 1.0
        if logs:
            say(f"{device}: the refitted model is scaled by {scale:.3f} (measured / predicted "
                f"of the {len(logs)} model(s) this search profiled)")
        out[device] = replace(model, scale=scale)
    return out


def _round_arch(out: Path, rnd: int, arch: Architecture) -> Architecture:
    """The architecture round ``rnd`` ended with: from the journal when it recorded one,
    else ``arch`` (recorded now)."""
    for rec in read_journal(out):
        if rec.get("event") == "round" and rec.get("round") == rnd:
            return Architecture.from_dict(rec["arch"])
    with (out / JOURNAL).open("a") as f:
        f.write(json.dumps({"event": "round", "round": rnd, "arch": arch.to_dict()}) + "\n")
    return arch


def normalize(data: Any) -> tuple[Any, dict[str, Any]]:
    """The dataset with standardized inputs, and the statistics (training split only).

    An int8 input has one scale for the whole tensor, and MFCC coefficients differ in range
    by two orders of magnitude (c0, the log energy, spans hundreds; the others a few units):
    quantized raw, most coefficients would get a handful of levels. So each coefficient
    (for ``kws``: each column of the 49 x 10 input; for images and log-mel patches: the
    whole input) is standardized with training-set statistics, which the exported model's
    sidecar records (``dnas.input_normalization``): a deployment applies the same affine
    map after its front end."""
    import numpy as np

    x = data.x_train
    axes = (0, 1, 3) if data.task == "kws" else (0, 1, 2, 3)
    mean = x.mean(axis=axes, keepdims=True).astype(np.float32)
    std = np.maximum(x.std(axis=axes, keepdims=True), 1e-6).astype(np.float32)

    def f(a: Any) -> Any:
        return ((a - mean) / std).astype(np.float32)

    import copy

    out = copy.copy(data)
    out.x_train, out.x_val, out.x_test = f(data.x_train), f(data.x_val), f(data.x_test)
    out.extra_tests = {k: (f(x_), y) for k, (x_, y) in data.extra_tests.items()}
    what = "per MFCC coefficient (input column)" if data.task == "kws" else "whole input"
    return out, {"mean": mean.reshape(-1).tolist(), "std": std.reshape(-1).tolist(),
             "over": what, "apply": "x_model = (x - mean) / std"}


def _refine(cfg: SearchConfig) -> SearchConfig:
    """A refinement round: half the epochs, no warm-up, the temperature already low."""
    d = asdict(cfg)
    d.update(epochs=max(1, cfg.epochs // 2), warmup=0, tau0=cfg.tau1)
    return SearchConfig(**d)


def _train(cfg: SearchConfig, data: Any, cand: Candidate, say: Progress) -> Any:
    from search.dnas.train import train_network

    say(f"training {cand.arch.name} from scratch ({cfg.final_epochs} epochs + "
        f"{cfg.qat_epochs} QAT)")
    return train_network(cand.arch.network(), data, epochs=cfg.final_epochs,
                         qat_epochs=cfg.qat_epochs, weight_bits=cfg.weight_bits,
                         seed=cfg.seed, batch_size=cfg.batch_size, progress=say)


def _sidecar(cfg: SearchConfig, cand: Candidate, budgets: list[Budget],
             latency: dict[str, LatencyModel], trained: Any, data: Any) -> dict[str, Any]:
    """The model's sidecar: what ``mcuprof sample`` writes, plus the search's record."""
    from search.convert import sidecar_meta

    meta = sidecar_meta(
        cand.arch.name, trained.tflite, cand.arch.network(), arch=cand.arch,
        file=f"{cand.arch.name}-r{cand.round}.tflite", source=f"DNAS search ({cfg.data})",
        weight_bits=cfg.weight_bits,
        calibration=f"{min(len(data.x_train), 200)} training inputs of {cfg.data}")
    return {
        **meta,
        "dnas": {"config": asdict(cfg), "round": cand.round,
                 "budgets": [b.to_dict() for b in budgets],
                 "predicted": cand.predicted.to_dict(),
                 "fits": {d: m.describe() for d, m in latency.items()},
                 "accuracy": trained.int8_accuracy,
                 "float_val_accuracy": trained.float_val_accuracy,
                 "training": trained.history,
                 "qat": "weight fake-quantization (per channel, straight-through) + "
                        "post-training activation calibration on training inputs"},
    }


def _round_line(cand: Candidate, budgets: list[Budget]) -> str:
    parts = [f"round {cand.round}: {cand.arch.name}"]
    for r in cand.report_rows(budgets):
        if r["measured_ms"] is not None and r["predicted_ms"] is not None:
            parts.append(f"{r['device']}: predicted {r['predicted_ms']:.2f} ms, "
                         f"profiled {r['measured_ms']:.2f} ms ({r['error_pct']:+.1f} %)")
    return "; ".join(parts)
