"""The search run as the server keeps it (``/api/v1/searches``, the dashboard's search page).

Everything goes through ``profiler_client``: the run when the search starts (its config,
budgets and the fit versions its latency models are), every epoch (temperature, loss,
the supernet's validation accuracy, the current architecture's costs per device), every
exported candidate (predictions and accuracy), its profiled figures once verified, and the
end state. The run's id is kept in ``<out>/server_run.json`` by server URL, so a resumed
search appends to the same run; epochs and candidates are named by (round, epoch) and
(round, arch id), so sending one again replaces it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from profiler_client.client import Client
from profiler_client.schemas import (
    SearchArch,
    SearchBudget,
    SearchCandidateIn,
    SearchCandidatePatch,
    SearchCost,
    SearchEpochIn,
    SearchMeasured,
    SearchPrediction,
    SearchRunIn,
    SearchRunPatch,
)
from search.dnas.costs import Budget
from search.dnas.latency import LatencyModel

RUN_FILE = "server_run.json"


class Recorder:
    """One search run on one server."""

    def __init__(self, client: Client, out: Path, cfg: Any, budgets: list[Budget],
                 latency: dict[str, LatencyModel]) -> None:
        self.client = client
        self.path = out / RUN_FILE
        known = json.loads(self.path.read_text()) if self.path.is_file() else {}
        run_id = known.get(client.url)
        if run_id is None:
            run = client.create_search(SearchRunIn(
                name=out.name, space=cfg.space, devices=list(cfg.devices), config=asdict(cfg),
                budgets={b.device: SearchBudget(sram_bytes=b.sram_bytes,
                                                flash_bytes=b.flash_bytes,
                                                latency_ms=b.latency_ms) for b in budgets},
                fit_versions={d: m.version for d, m in latency.items()}))
            run_id = run.id
            known[client.url] = run_id
            self.path.write_text(json.dumps(known, indent=2))
        self.run_id: int = run_id
        self._cands: dict[tuple[int, str], int] = {}
        # A rerun of a finished search changes nothing on the server (it refuses appends).
        self.active = client.search(run_id).state == "running"

    def _call(self, fn: Any, *args: Any) -> Any:
        return fn(*args) if self.active else None

    @property
    def url(self) -> str:
        return f"{self.client.url}/searches/{self.run_id}"

    def fits(self, latency: dict[str, LatencyModel]) -> None:
        self._call(self.client.update_search, self.run_id, SearchRunPatch(
            fit_versions={d: m.version for d, m in latency.items()}))

    def epoch(self, rnd: int, rec: dict[str, Any]) -> None:
        c = rec["costs"]
        costs = {d: SearchCost(latency_ms=c["latency_ms"].get(d), sram_bytes=c["sram_bytes"][d],
                               flash_bytes=c["flash_bytes"][d], ops=c["ops"])
                 for d in c["sram_bytes"]}
        self._call(self.client.add_search_epochs, self.run_id, [SearchEpochIn(
            round=rnd, epoch=rec["epoch"], temperature=rec["tau"], loss=rec["loss"],
            accuracy=rec["val_acc"], costs=costs,
            candidate=SearchArch(arch_id=rec["arch_id"], architecture=rec["arch"]))])

    def candidate(self, cand: Any, accuracy: float | None,
                  latency: dict[str, LatencyModel]) -> None:
        p = cand.predicted
        predicted = {}
        for d in p.sram_bytes:
            if d not in p.latency_ms:
                continue
            lo, hi = p.latency_interval[d]
            predicted[d] = SearchPrediction(
                latency_ms=p.latency_ms[d], latency_lo_ms=lo, latency_hi_ms=hi,
                sram_bytes=p.sram_bytes[d], flash_bytes=p.flash_bytes[d],
                fit_version=latency[d].version if d in latency else None,
                extrapolated=any(w.startswith(f"{d}:") for w in p.warnings))
        out = self._call(self.client.add_search_candidate, self.run_id, SearchCandidateIn(
            round=cand.round, arch_id=cand.arch.id, architecture=cand.arch.to_dict(),
            accuracy=accuracy, predicted=predicted))
        if out is not None:
            self._cands[(cand.round, cand.arch.id)] = out.id

    def verified(self, cand: Any) -> None:
        cid = self._cands.get((cand.round, cand.arch.id))
        if cid is None:
            return
        measured = {d: SearchMeasured(latency_ms=m["latency_ms"], sram_bytes=m["arena_bytes"],
                                      flash_bytes=m["plan_bytes"], job_id=m.get("job_id"),
                                      measurement_id=m.get("measurement_id"))
                    for d, m in cand.measured.items() if m.get("latency_ms")}
        self._call(self.client.update_search_candidate, self.run_id, cid, SearchCandidatePatch(
            measured=measured, verified=bool(measured), model_id=cand.model_id))

    def finish(self, result: dict[str, Any] | None, error: str | None = None) -> None:
        self._call(self.client.update_search, self.run_id, SearchRunPatch(
            state="failed" if error else "done", error=error, result=result))
        self.active = False
