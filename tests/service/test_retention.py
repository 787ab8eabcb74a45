"""The storage quota and retention, on SQLite and PostgreSQL: an upload over
MCUPROF_STORAGE_QUOTA_BYTES is refused with nothing stored; DELETE /api/v1/models/{id} and a
retention pass delete exactly what they say and keep what queued or leased jobs and
measurements need; the app's background task and `mcuprof prune` run the same pass."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from profiler_client.schemas import MeasurementIn
from service.api.storage import analyze, store_model
from service.cli_server import prune as prune_cmd
from service.db.engine import Database
from service.db.models import Attempt, Job, Measurement, Model, ModelTag, utcnow
from service.queue import (
    ConflictError,
    Lease,
    NotFoundError,
    cancel,
    enqueue,
    lease,
    register_agent,
    report_failure,
    report_result,
)
from service.retention import StorageQuotaError, delete_model, prune, storage_usage
from tests.service.conftest import MakeClient
from tests.service.helpers import measurement, relu_model, upload

F446 = "virtual:nucleo-f446re"
BOARD_A, BOARD_B = f"{F446}:a", f"{F446}:b"
LEASE = 60.0  # seconds
DAYS = 10.0  # the retention in these tests
MODEL_LOG = ["m-ready", "m-results-[...]"]  # the serial log helpers.measurement sends


def count(db: Database, what: object, *where: object) -> int:
    with db.transaction(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(what)  # type: ignore[arg-type]
                            .where(*where)) or 0)  # type: ignore[arg-type]


# -- the quota ---------------------------------------------------------------------------------


def test_an_upload_over_the_quota_is_507_and_stores_nothing(make_client: MakeClient,
                                                            database: Database,
                                                            kws_bytes: bytes) -> None:
    relu = relu_model(8, 8, 4)
    quota = len(kws_bytes) + len(relu) - 1  # room for one of them, not both
    client = make_client(storage_quota_bytes=quota)
    kws = upload(client, kws_bytes, tags=["backbone=kws"])
    assert kws.status_code == 201, kws.text

    refused = upload(client, relu, name="relu.tflite", tags=["backbone=relu"])
    assert refused.status_code == 507, refused.text
    detail = refused.json()["detail"]
    assert "\n" not in detail
    assert f"({len(relu):,} bytes)" in detail
    assert f"{len(kws_bytes):,} of {quota:,} bytes are used by 1 model(s)" in detail
    assert "MCUPROF_STORAGE_QUOTA_BYTES" in detail and "DELETE /api/v1/models/<id>" in detail
    assert count(database, Model) == 1
    assert count(database, ModelTag, ModelTag.value == "relu") == 0

    # Known bytes take no more space: accepted at the quota, their tags merged.
    again = upload(client, kws_bytes, tags=["width=1"])
    assert again.status_code == 200 and again.json()["tags"] == {"backbone": "kws", "width": "1"}

    # Deleting the model frees its bytes; then the other fits.
    assert client.delete(f"/api/v1/models/{kws.json()['id']}").status_code == 204
    assert upload(client, relu, name="relu.tflite").status_code == 201
    with database.transaction(write=False) as s:
        assert storage_usage(s).bytes == len(relu)


def test_a_quota_of_zero_is_no_limit(make_client: MakeClient, kws_bytes: bytes) -> None:
    client = make_client(storage_quota_bytes=0)
    assert upload(client, kws_bytes).status_code == 201
    assert upload(client, relu_model(8, 8, 4), name="relu.tflite").status_code == 201


def test_store_model_checks_the_quota_in_its_transaction(database: Database,
                                                         kws_bytes: bytes) -> None:
    analysis = analyze(kws_bytes, "kws")
    with database.transaction() as s, pytest.raises(StorageQuotaError) as err:
        store_model(s, kws_bytes, name="kws", tags={}, analysis=analysis,
                    quota_bytes=len(kws_bytes) - 1)
    assert (err.value.used_bytes, err.value.models) == (0, 0)
    assert count(database, Model) == 0
    with database.transaction() as s:
        store_model(s, kws_bytes, name="kws", tags={}, analysis=analysis,
                    quota_bytes=len(kws_bytes))
    assert count(database, Model) == 1


def test_concurrent_uploads_cannot_share_the_last_free_bytes(database: Database,
                                                            kws_bytes: bytes) -> None:
    """Two uploads that each fit, but not together: the second waits for the first's
    transaction and then sees its bytes (PostgreSQL: the advisory lock; SQLite: the writer
    lock), so the quota holds under concurrency."""
    relu = relu_model(8, 8, 4)
    quota = len(kws_bytes) + len(relu) - 1
    outcome: list[object] = []

    def second() -> None:
        try:
            with database.transaction() as s:
                store_model(s, relu, name="relu", tags={}, analysis=analyze(relu, "relu"),
                            quota_bytes=quota)
            outcome.append("stored")
        except StorageQuotaError as e:
            outcome.append(e)

    with database.transaction() as s:
        store_model(s, kws_bytes, name="kws", tags={}, analysis=analyze(kws_bytes, "kws"),
                    quota_bytes=quota)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second upload did not wait for the first"
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], StorageQuotaError), outcome
    assert outcome[0].used_bytes == len(kws_bytes)
    assert count(database, Model) == 1


# -- deleting and retention -----------------------------------------------------------------------


def store(db: Database, data: bytes, name: str) -> int:
    with db.transaction() as s:
        model, _ = store_model(s, data, name=name, tags={"name": name},
                               analysis=analyze(data, name))
        return model.id


def submit(db: Database, model_id: int, now: datetime) -> int:
    with db.transaction() as s:
        model = s.get(Model, model_id)
        assert model is not None
        (job,) = enqueue(s, model, [F446], runs=2, warmup=1, kernels="dsp", priority=0,
                         max_attempts=1, now=now)
        return job.id


def take(db: Database, device: str, job_id: int, now: datetime) -> int:
    with db.transaction() as s:
        got = lease(s, device, agent_name=None, lease_seconds=LEASE, now=now)
    assert isinstance(got, Lease) and got.job.id == job_id, got
    return got.attempt.id


class World:
    """One model of each kind retention must tell apart, everything (but ``fresh``) uploaded
    and worked on 20 days ago, before the 10-day cutoff."""

    def __init__(self, db: Database, kws_bytes: bytes) -> None:
        now = utcnow()
        self.now = now
        old = now - timedelta(days=2 * DAYS)
        with db.transaction() as s:
            register_agent(s, "agent-1", [BOARD_A, BOARD_B], version="1", lease_seconds=LEASE,
                           now=old)
        ids = {name: store(db, relu_model(4, 4, i + 1), name) for i, name in enumerate(
            ("unused", "failed", "queued", "leased", "recent", "fresh"))}
        ids["measured"] = store(db, kws_bytes, "measured")
        self.ids = ids

        self.failed_job = submit(db, ids["failed"], old)
        lease_id = take(db, BOARD_A, self.failed_job, old)
        with db.transaction() as s:
            report_failure(s, lease_id, "no answer", retryable=False,
                           serial_log=["> infer 2 1%", "(silence)"], agent_name=None,
                           now=old + timedelta(seconds=5))

        self.measured_job = submit(db, ids["measured"], old)
        lease_id = take(db, BOARD_A, self.measured_job, old)
        with db.transaction() as s:
            report_result(s, lease_id, MeasurementIn(**measurement(BOARD_A)), agent_name=None,
                          now=old + timedelta(seconds=5))
            s.execute(update(Attempt).where(Attempt.id == lease_id)
                      .values(serial_log=["> infer 2 1%", "< m-ready"]))

        self.leased_job = submit(db, ids["leased"], old)
        self.leased_attempt = take(db, BOARD_B, self.leased_job, old)
        with db.transaction() as s:
            s.execute(update(Attempt).where(Attempt.id == self.leased_attempt)
                      .values(serial_log=["> infer 2 1%"]))

        self.queued_job = submit(db, ids["queued"], old)
        self.recent_job = submit(db, ids["recent"], old)
        with db.transaction() as s:
            cancel(s, self.recent_job, now=now - timedelta(days=1))

        with db.transaction() as s:
            s.execute(update(Model).where(Model.id != ids["fresh"]).values(created_at=old))


@pytest.fixture
def world(database: Database, kws_bytes: bytes) -> World:
    return World(database, kws_bytes)


def surviving(db: Database) -> set[str]:
    with db.transaction(write=False) as s:
        return set(s.scalars(select(Model.name)))


def test_retention_deletes_exactly_what_it_says(database: Database, world: World) -> None:
    with database.transaction(write=False) as s:
        planned = prune(s, days=DAYS, now=world.now, dry_run=True)
    assert set(surviving(database)) == set(world.ids)  # a dry run changes nothing

    with database.transaction() as s:
        done = prune(s, days=DAYS, now=world.now)
    assert done == planned
    ids = world.ids
    assert set(done.model_ids) == {ids["unused"], ids["failed"]}
    assert done.model_bytes == sum(len(relu_model(4, 4, i)) for i in (1, 2))
    # The measured job's attempt log and its measurement's log; the failed model's attempt
    # went with its model, the leased job's attempt is not finished.
    assert (done.attempt_logs, done.measurement_logs) == (1, 1)

    assert surviving(database) == {"queued", "leased", "recent", "fresh", "measured"}
    assert count(database, Job, Job.id == world.failed_job) == 0
    assert count(database, Attempt, Attempt.job_id == world.failed_job) == 0
    assert count(database, ModelTag, ModelTag.value.in_(["unused", "failed"])) == 0
    with database.transaction(write=False) as s:
        kept = s.scalars(select(Measurement).where(Measurement.job_id == world.measured_job)
                         ).one()
        assert kept.serial_log == [] and kept.cycles == measurement(BOARD_A)["cycles"]
        attempts = {a.job_id: a.serial_log for a in s.scalars(select(Attempt))}
        assert attempts[world.measured_job] is None
        assert attempts[world.leased_job] == ["> infer 2 1%"]
        assert s.get(Job, world.queued_job).state == "queued"  # type: ignore[union-attr]
        assert s.get(Job, world.leased_job).state == "leased"  # type: ignore[union-attr]

    with database.transaction() as s:
        assert prune(s, days=DAYS, now=world.now).nothing  # a second pass finds nothing


def test_retention_off_deletes_nothing(database: Database, world: World) -> None:
    with database.transaction() as s:
        assert prune(s, days=0, now=world.now).nothing
    with database.transaction() as s:
        # Everything is younger than a retention of a year.
        assert prune(s, days=365, now=world.now).nothing
    assert surviving(database) == set(world.ids)
    assert count(database, Measurement, func.json_array_length(Measurement.serial_log) > 0) == 1


def test_delete_keeps_models_that_jobs_or_measurements_need(make_client: MakeClient,
                                                            database: Database,
                                                            world: World) -> None:
    client = make_client()
    ids = world.ids
    for name, why in (("queued", "queued or leased job"), ("leased", "queued or leased job"),
                      ("measured", "measurement")):
        r = client.delete(f"/api/v1/models/{ids[name]}")
        assert r.status_code == 409 and why in r.json()["detail"], (name, r.text)
        with database.transaction() as s, pytest.raises(ConflictError):
            delete_model(s, ids[name])
    missing = client.delete("/api/v1/models/999999")
    assert missing.status_code == 404 and "no model 999999" in missing.json()["detail"]
    with database.transaction() as s, pytest.raises(NotFoundError):
        delete_model(s, 999_999)

    # A model whose only job was cancelled a day ago is the user's to delete (retention would
    # wait): the job and its history go with it.
    assert client.delete(f"/api/v1/models/{ids['recent']}").status_code == 204
    assert count(database, Job, Job.id == world.recent_job) == 0
    assert surviving(database) == set(world.ids) - {"recent"}


def test_the_app_runs_retention_in_the_background(make_client: MakeClient, database: Database,
                                                  world: World) -> None:
    make_client(retention_days=DAYS, retention_interval_seconds=0.05)
    deadline = time.monotonic() + 10.0
    while "unused" in surviving(database):
        assert time.monotonic() < deadline, "the background retention never ran"
        time.sleep(0.05)
    assert surviving(database) == {"queued", "leased", "recent", "fresh", "measured"}


def test_no_background_retention_unless_it_is_set(make_client: MakeClient,
                                                  database: Database, world: World) -> None:
    client: TestClient = make_client(retention_days=0, retention_interval_seconds=0.05)
    time.sleep(0.3)
    assert client.get("/api/v1/models").status_code == 200
    assert surviving(database) == set(world.ids)


def test_prune_command(database: Database, db_url: str, world: World,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCUPROF_DATABASE_URL", db_url)
    monkeypatch.delenv("MCUPROF_RETENTION_DAYS", raising=False)
    runner = CliRunner()
    off = runner.invoke(prune_cmd, [])
    assert off.exit_code != 0 and "pass --days N" in str(off.exception)

    dry = runner.invoke(prune_cmd, ["--days", "10", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 model(s)" in dry.output
    assert surviving(database) == set(world.ids)

    done = runner.invoke(prune_cmd, ["--days", "10"])
    assert done.exit_code == 0, done.output
    assert "deleted 2 model(s)" in done.output and "stored models: 5," in done.output
    assert surviving(database) == {"queued", "leased", "recent", "fresh", "measured"}
