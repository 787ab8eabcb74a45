"""The job queue on its own (no HTTP), on SQLite and PostgreSQL: lease order, expiry and
retries, idempotent results, board health, cancellation, fitting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from profiler_client.schemas import MeasurementIn
from service.api.storage import analyze, store_model
from service.db.engine import Database
from service.db.models import Attempt, Job, Measurement, Model
from service.queue import (
    ConflictError,
    InvalidRequestError,
    Lease,
    NotFoundError,
    NotOwnerError,
    NoWork,
    cancel,
    enqueue,
    expire_leases,
    heartbeat,
    lease,
    register_agent,
    report_failure,
    report_result,
    set_health,
)
from tests.service.helpers import measurement, relu_model

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
LEASE = 60.0  # seconds
F446 = "virtual:nucleo-f446re"
BOARD_A, BOARD_B = f"{F446}:a", f"{F446}:b"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def model_id(database: Database, kws_bytes: bytes) -> int:
    with database.transaction() as s:
        model, _ = store_model(s, kws_bytes, name="kws", tags={"backbone": "kws"},
                               analysis=analyze(kws_bytes, "kws"))
        return model.id


@pytest.fixture
def agent_id(database: Database) -> int:
    with database.transaction() as s:
        return register_agent(s, "agent-1", [BOARD_A, BOARD_B, "virtual:nucleo-f746zg:c"],
                              version="1", lease_seconds=LEASE, now=T0).id


def submit(db: Database, model_id: int, devices: list[str], *, priority: int = 0,
           max_attempts: int = 3, now: datetime = T0) -> list[int]:
    with db.transaction() as s:
        model = s.get(Model, model_id)
        assert model is not None
        jobs = enqueue(s, model, devices, runs=2, warmup=1, kernels="dsp", priority=priority,
                       max_attempts=max_attempts, now=now)
        return [j.id for j in jobs]


def take(db: Database, device: str, now: datetime, agent: str | None = None) -> Lease | NoWork:
    with db.transaction() as s:
        return lease(s, device, agent_name=agent, lease_seconds=LEASE, now=now)


def granted(result: Lease | NoWork) -> tuple[int, int]:
    """(lease id, job id) of a granted lease."""
    assert isinstance(result, Lease), result
    return result.attempt.id, result.job.id


def job(db: Database, job_id: int) -> Job:
    with db.transaction(write=False) as s:
        found = s.get(Job, job_id)
        assert found is not None
        return found


def history(db: Database, job_id: int) -> list[Attempt]:
    with db.transaction(write=False) as s:
        return list(s.scalars(select(Attempt).where(Attempt.job_id == job_id)
                              .order_by(Attempt.attempt)))


def measurements(db: Database, job_id: int) -> int:
    with db.transaction(write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Measurement)
                            .where(Measurement.job_id == job_id)) or 0)


def result(db: Database, lease_id: int, device: str = BOARD_A, **changes: object) -> Job:
    with db.transaction() as s:
        return report_result(s, lease_id, MeasurementIn(**measurement(device, **changes)),
                             agent_name=None, now=at(1))


def test_lease_takes_highest_priority_then_oldest(database: Database, model_id: int,
                                                  agent_id: int) -> None:
    low1 = submit(database, model_id, [F446])[0]
    high1 = submit(database, model_id, [F446], priority=5)[0]
    other_class = submit(database, model_id, ["virtual:nucleo-f746zg"], priority=9)[0]
    low2 = submit(database, model_id, [F446])[0]
    high2 = submit(database, model_id, [F446], priority=5)[0]
    order = []
    for i in range(4):
        lease_id, job_id = granted(take(database, BOARD_A, at(i)))
        order.append(job_id)
        result(database, lease_id)
    assert order == [high1, high2, low1, low2]
    assert isinstance(take(database, BOARD_A, at(5)), NoWork)
    assert granted(take(database, "virtual:nucleo-f746zg:c", at(5)))[1] == other_class


def test_one_lease_per_job_and_per_board(database: Database, model_id: int,
                                         agent_id: int) -> None:
    first, second = submit(database, model_id, [F446]), submit(database, model_id, [F446])
    a = granted(take(database, BOARD_A, T0))
    b = granted(take(database, BOARD_B, T0))
    assert {a[1], b[1]} == {first[0], second[0]}
    assert isinstance(take(database, "virtual:nucleo-f746zg:c", T0), NoWork)
    assert job(database, a[1]).lease_id == a[0]


def test_expired_lease_returns_to_queue_with_its_attempt_count(
        database: Database, model_id: int, agent_id: int) -> None:
    [job_id] = submit(database, model_id, [F446])
    first, _ = granted(take(database, BOARD_A, T0))
    with database.transaction() as s:  # not yet
        assert expire_leases(s, now=at(LEASE - 1)) == []
    second, again = granted(take(database, BOARD_B, at(LEASE + 1)))  # sweeps first
    assert again == job_id and second != first
    j = job(database, job_id)
    assert (j.state, j.attempts, j.lease_id) == ("leased", 2, second)
    attempts = history(database, job_id)
    assert [a.outcome for a in attempts] == ["expired", "running"]
    assert "lease expired" in (attempts[0].error or "")
    assert attempts[0].device == BOARD_A and attempts[1].device == BOARD_B


def test_max_attempts_fails_the_job_keeping_every_error(
        database: Database, model_id: int, agent_id: int) -> None:
    [job_id] = submit(database, model_id, [F446], max_attempts=3)
    granted(take(database, BOARD_A, T0))
    with database.transaction() as s:
        expire_leases(s, now=at(LEASE + 1))
    lease2, _ = granted(take(database, BOARD_A, at(100)))
    with database.transaction() as s:
        report_failure(s, lease2, "serial timeout after 5 s", retryable=True, agent_name=None,
                       serial_log=["infer 2 1%"], now=at(101))
    lease3, _ = granted(take(database, BOARD_B, at(102)))
    with database.transaction() as s:
        failed = report_failure(s, lease3, "firmware error e-[plan crc]", retryable=True,
                                agent_name=None, now=at(103))
        assert failed.state == "failed"
    j = job(database, job_id)
    assert j.state == "failed" and j.attempts == 3
    assert j.error is not None
    for fragment in ("3 attempt", "lease expired", "serial timeout", "plan crc"):
        assert fragment in j.error
    attempts = history(database, job_id)
    assert [a.outcome for a in attempts] == ["expired", "failed", "failed"]
    assert attempts[1].serial_log == ["infer 2 1%"]
    assert isinstance(take(database, BOARD_A, at(104)), NoWork)


def test_not_retryable_failure_fails_at_once(database: Database, model_id: int,
                                             agent_id: int) -> None:
    [job_id] = submit(database, model_id, [F446])
    lease_id, _ = granted(take(database, BOARD_A, T0))
    with database.transaction() as s:
        report_failure(s, lease_id, "plan rejected: board code", retryable=False,
                       agent_name=None, now=at(1))
    with database.transaction() as s:  # the same report again is harmless
        assert report_failure(s, lease_id, "plan rejected: board code", retryable=False,
                              agent_name=None, now=at(2)).state == "failed"
    with database.transaction() as s, pytest.raises(ConflictError):
        report_failure(s, lease_id, "another story", retryable=False, agent_name=None)
    assert job(database, job_id).attempts == 1


def test_results_are_idempotent(database: Database, model_id: int, agent_id: int) -> None:
    [job_id] = submit(database, model_id, [F446])
    lease_id, _ = granted(take(database, BOARD_A, T0))
    assert result(database, lease_id).state == "done"
    assert result(database, lease_id).state == "done"  # duplicate: the same row
    assert measurements(database, job_id) == 1
    with database.transaction() as s, pytest.raises(ConflictError, match="different"):
        report_result(s, lease_id, MeasurementIn(**measurement(BOARD_A, cycles=1)),
                      agent_name=None)
    assert measurements(database, job_id) == 1


def test_late_report_after_expiry_and_release_is_refused(
        database: Database, model_id: int, agent_id: int) -> None:
    [job_id] = submit(database, model_id, [F446])
    stale, _ = granted(take(database, BOARD_A, T0))
    fresh, _ = granted(take(database, BOARD_B, at(LEASE + 1)))
    with database.transaction() as s, pytest.raises(ConflictError, match="no longer holds"):
        report_result(s, stale, MeasurementIn(**measurement(BOARD_A)), agent_name=None)
    result(database, fresh, device=BOARD_B)
    with database.transaction() as s, pytest.raises(ConflictError):
        report_result(s, stale, MeasurementIn(**measurement(BOARD_A)), agent_name=None)
    # ... unless it is the very measurement that was stored
    with database.transaction() as s:
        assert report_result(s, stale, MeasurementIn(**measurement(BOARD_B)),
                             agent_name=None).state == "done"
    assert measurements(database, job_id) == 1


def test_result_past_expiry_but_not_yet_taken_back_is_kept(
        database: Database, model_id: int, agent_id: int) -> None:
    [job_id] = submit(database, model_id, [F446])
    lease_id, _ = granted(take(database, BOARD_A, T0))
    with database.transaction() as s:
        report_result(s, lease_id, MeasurementIn(**measurement(BOARD_A)), agent_name=None,
                      now=at(LEASE * 2))
    assert job(database, job_id).state == "done"


def test_result_must_name_the_leased_board_and_agent(
        database: Database, model_id: int, agent_id: int) -> None:
    submit(database, model_id, [F446])
    lease_id, _ = granted(take(database, BOARD_A, T0))
    with database.transaction() as s, pytest.raises(InvalidRequestError, match="granted to"):
        report_result(s, lease_id, MeasurementIn(**measurement(BOARD_B)), agent_name=None)
    with database.transaction() as s, pytest.raises(NotOwnerError, match="held by agent"):
        report_result(s, lease_id, MeasurementIn(**measurement(BOARD_A)),
                      agent_name="agent-2")
    with database.transaction() as s, pytest.raises(NotFoundError):
        report_result(s, 99_999, MeasurementIn(**measurement(BOARD_A)), agent_name=None)


def test_heartbeat_extends_and_reports_lost_leases(
        database: Database, model_id: int, agent_id: int) -> None:
    jobs = submit(database, model_id, [F446]) + submit(database, model_id, [F446])
    keep, _ = granted(take(database, BOARD_A, T0))
    drop, drop_job = granted(take(database, BOARD_B, T0))
    with database.transaction() as s:
        extended, lost = heartbeat(s, agent_id, [keep, 424242], agent_name=None,
                                   lease_seconds=LEASE, now=at(LEASE - 5))
    assert (extended, lost) == ([keep], [424242])
    with database.transaction() as s:  # `drop` was not listed: it expires, `keep` does not
        extended, lost = heartbeat(s, agent_id, [keep, drop], agent_name=None,
                                   lease_seconds=LEASE, now=at(LEASE + 1))
    assert (extended, lost) == ([keep], [drop])
    assert job(database, drop_job).state == "queued"
    assert job(database, jobs[0]).state == "leased" or job(database, jobs[1]).state == "leased"
    with database.transaction() as s, pytest.raises(NotOwnerError):
        heartbeat(s, agent_id, [keep], agent_name="agent-2", lease_seconds=LEASE)
    with database.transaction() as s, pytest.raises(NotFoundError):
        heartbeat(s, 777, [], agent_name=None, lease_seconds=LEASE)


def test_bad_board_gets_no_work_until_healthy(database: Database, model_id: int,
                                              agent_id: int) -> None:
    submit(database, model_id, [F446])
    with database.transaction() as s:
        set_health(s, BOARD_A, ok=False, detail="cycle count off by 40 %", agent_name=None)
    refused = take(database, BOARD_A, T0)
    assert isinstance(refused, NoWork) and "marked bad" in refused.reason
    with database.transaction() as s:
        set_health(s, BOARD_A, ok=True, detail=None, agent_name=None)
    granted(take(database, BOARD_A, at(1)))


def test_cancel(database: Database, model_id: int, agent_id: int) -> None:
    queued, running, finished = (submit(database, model_id, [F446])[0] for _ in range(3))
    with database.transaction() as s:
        assert cancel(s, queued).state == "cancelled"
    lease_run, job_run = granted(take(database, BOARD_A, T0))
    lease_fin, job_fin = granted(take(database, BOARD_B, T0))
    assert {job_run, job_fin} == {running, finished}
    result(database, lease_fin, device=BOARD_B)
    with database.transaction() as s:
        assert cancel(s, job_run).state == "cancelled"
    with database.transaction() as s:
        assert cancel(s, job_run).state == "cancelled"  # again: no-op
    with database.transaction() as s:
        _, lost = heartbeat(s, agent_id, [lease_run], agent_name=None, lease_seconds=LEASE,
                            now=at(2))
    assert lost == [lease_run]
    with database.transaction() as s, pytest.raises(ConflictError, match="cancelled"):
        report_result(s, lease_run, MeasurementIn(**measurement(BOARD_A)), agent_name=None)
    with database.transaction() as s, pytest.raises(ConflictError, match="already done"):
        cancel(s, job_fin)
    with database.transaction() as s, pytest.raises(NotFoundError):
        cancel(s, 10**6)
    assert history(database, job_run)[0].outcome == "cancelled"


def test_abandoned_lease_goes_back_to_the_queue(database: Database, model_id: int,
                                                agent_id: int) -> None:
    [first] = submit(database, model_id, [F446])
    submit(database, model_id, [F446])
    old, old_job = granted(take(database, BOARD_A, T0))
    # The agent restarted and asks again for the same board: the old lease is abandoned,
    # its job requeued (still the oldest, so it comes straight back as attempt 2).
    new, new_job = granted(take(database, BOARD_A, at(1)))
    assert old_job == new_job == first and new != old
    assert [a.outcome for a in history(database, first)] == ["abandoned", "running"]
    assert job(database, first).attempts == 2
    with database.transaction() as s, pytest.raises(ConflictError):
        report_result(s, old, MeasurementIn(**measurement(BOARD_A)), agent_name=None)


def test_a_model_that_does_not_fit_fails_at_once(database: Database, agent_id: int) -> None:
    data = relu_model(64, 64, 16)  # 128 KiB arena: not the F446RE's 120, fits the F746ZG
    with database.transaction() as s:
        model, _ = store_model(s, data, name="relu", tags={}, analysis=analyze(data, "relu"))
        model_id = model.id
    small, big = submit(database, model_id, [F446, "virtual:nucleo-f746zg"])
    j = job(database, small)
    assert j.state == "failed" and j.attempts == 0
    assert j.error is not None and "131072" in j.error and "122880" in j.error
    assert job(database, big).state == "queued"
    assert isinstance(take(database, BOARD_A, T0), NoWork)


def test_enqueue_refuses_unknown_classes_without_writing(database: Database,
                                                         model_id: int) -> None:
    for devices in ([F446, "virtual:nucleo-x"], ["warp:nucleo-f446re"], [f"{F446}:a"]):
        with database.transaction() as s, pytest.raises(InvalidRequestError):
            model = s.get(Model, model_id)
            assert model is not None
            enqueue(s, model, devices, runs=1, warmup=0, kernels="dsp", priority=0,
                    max_attempts=3)
    with database.transaction(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_boards_belong_to_one_live_agent(database: Database, agent_id: int) -> None:
    with database.transaction() as s, pytest.raises(ConflictError, match="agent-1"):
        register_agent(s, "agent-2", [BOARD_A], version=None, lease_seconds=LEASE,
                       now=at(10))
    with database.transaction() as s:  # agent-1 went silent: its board may move
        register_agent(s, "agent-2", [BOARD_A], version=None, lease_seconds=LEASE,
                       now=at(LEASE + 10))
    with database.transaction() as s, pytest.raises(NotOwnerError):
        lease(s, BOARD_A, agent_name="agent-1", lease_seconds=LEASE)
    with database.transaction() as s, pytest.raises(NotFoundError):
        lease(s, f"{F446}:nowhere", agent_name=None, lease_seconds=LEASE)
