"""Fuzzing the REST API with schemathesis: every operation of ``/openapi.json``, with
requests that follow the schema (positive) and that break it (negative), sent to the app
in-process (ASGI) over a seeded database. A 5xx is a finding: bad input must be a 4xx that
says what was wrong.

``fuzz_app`` is shared by ``tests/fuzz/test_api_fuzz.py`` (bounded, part of ``make test``)
and ``benchmarks/fuzz_api.py`` (longer, prints the figures).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from schemathesis import GenerationMode

from service.api.app import create_app
from service.config import Settings
from service.db import migrate
from service.db.engine import Database, make_engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's httpx notice at import
    from fastapi.testclient import TestClient

SAMPLE_MODEL = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples" / \
    "kws_tiny.tflite"
SEED_BOARD = "virtual:nucleo-f446re:fuzz-0"
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
SHOWN = 20  # findings of each kind kept in a report


@dataclass
class FuzzReport:
    """What a run tried and found: cases sent, their statuses, the 5xx answers (with the
    request that caused them) and the cases that could not be sent at all."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    operations: int = 0
    seconds: float = 0.0
    seconds_per_operation: dict[str, float] = field(default_factory=dict)

    @property
    def server_error_count(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.operations} operations, {self.cases} cases in {self.seconds:.1f} s; "
                f"5xx: {self.server_error_count}; failures: {len(self.failures)}; "
                f"statuses {statuses}")


def fuzz_settings(database_url: str) -> Settings:
    """Settings of the app under fuzzing: auth off (every operation reachable), the host
    the ASGI client sends allowed, no background sweep."""
    values: dict[str, Any] = dict(database_url=database_url, host="127.0.0.1", port=8000,
                                  auth="off", lease_seconds=60.0, max_attempts=3,
                                  max_upload_bytes=1024 * 1024, expire_interval_seconds=0,
                                  db_pool_size=5, db_max_overflow=5)
    if "allowed_hosts" in Settings.model_fields:
        values["allowed_hosts"] = ["testserver", "localhost", "127.0.0.1"]
    return Settings(**values)


def seed(client: TestClient) -> None:
    """A model, an agent with a board, and a job leased to it: ids 1 exist, so generated
    ids reach more than the 404 path."""
    model = client.post("/api/v1/models", files={"file": ("kws.tflite",
                                                          SAMPLE_MODEL.read_bytes())},
                        data={"tag": ["backbone=kws"]})
    assert model.status_code == 201, model.text
    agent = client.post("/api/v1/agents", json={"name": "fuzz", "boards": [
        {"device": SEED_BOARD}]})
    assert agent.status_code == 200, agent.text
    jobs = client.post("/api/v1/jobs", json={"model_id": model.json()["id"],
                                             "devices": ["virtual:nucleo-f446re"] * 1})
    assert jobs.status_code == 201, jobs.text
    lease = client.post("/api/v1/leases", json={"device": SEED_BOARD})
    assert lease.status_code == 200, lease.text


def _describe(case: Any, status: int | None, detail: str) -> str:
    try:
        curl = case.as_curl_command()
    except Exception:  # a case whose body cannot be shown as a command line
        curl = f"{case.method} {case.formatted_path}"
    return f"{case.method} {case.path} -> {status}: {detail[:300]}\n    {curl[:600]}"


def fuzz_app(database_url: str, *, examples: int, seed_value: int = 0,
             time_budget_s: float | None = None) -> FuzzReport:
    """Fuzz every operation of an app over the migrated, empty database at
    ``database_url`` with ``examples`` cases per operation and mode; stop early after
    ``time_budget_s`` seconds."""
    migrate.upgrade(database_url)
    database = Database(make_engine(database_url, pool_size=5, max_overflow=5))
    report = FuzzReport()
    started = time.monotonic()
    try:
        app = create_app(fuzz_settings(database_url), database=database)
        with TestClient(app, base_url="http://testserver") as client:
            seed(client)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            operation = result.ok()
            report.operations += 1
            began = time.monotonic()
            for mode in MODES:
                if time_budget_s is not None and \
                        time.monotonic() - started > time_budget_s:
                    break
                _fuzz_operation(operation, mode, report, examples=examples,
                                seed_value=seed_value)
            report.seconds_per_operation[f"{operation.method.upper()} {operation.path}"] = \
                time.monotonic() - began
    finally:
        database.dispose()
        report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(operation: Any, mode: GenerationMode, report: FuzzReport, *,
                    examples: int, seed_value: int) -> None:
    @hypothesis.seed(seed_value)
    @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck),
                         phases=[Phase.explicit, Phase.generate],
                         verbosity=Verbosity.quiet, print_blob=False)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        report.cases += 1
        try:
            response = case.call()
        except Exception as e:  # the transport or the app raised instead of answering
            if len(report.failures) < SHOWN:
                report.failures.append(_describe(case, None, f"{type(e).__name__}: {e}"))
            else:
                report.failures.append(f"{type(e).__name__}")
            return
        report.statuses[response.status_code] += 1
        if response.status_code >= 500 and len(report.server_errors) < SHOWN:
            report.server_errors.append(_describe(case, response.status_code, response.text))

    try:
        send()
    except hypothesis.errors.Unsatisfiable:
        pass  # no negative case exists for this operation (nothing in it can be wrong)
