"""Many agents at once, at the queue level: 8 threads, each with its own board, lease and
report 100 jobs (some attempts fail and are retried, every result is sent twice). Every job
ends done with exactly one measurement, and no job is ever held by two leases at a time.
Run on PostgreSQL (FOR UPDATE SKIP LOCKED) and on SQLite (BEGIN IMMEDIATE)."""

from __future__ import annotations

import random
import threading
from collections import defaultdict

from sqlalchemy import func, select

from profiler_client.schemas import MeasurementIn
from service.api.storage import analyze, store_model
from service.db.engine import Database, make_engine
from service.db.models import Attempt, Job, Measurement
from service.queue import Lease, enqueue, lease, register_agent, report_failure, report_result
from tests.service.helpers import measurement

AGENTS = 8
JOBS = 100
FAILURE_RATE = 0.15  # share of attempts that report a retryable failure
LEASE = 60.0  # seconds: nothing expires during the test
CLASS = "virtual:nucleo-f446re"


def test_concurrent_agents_run_each_job_once(db_url: str, kws_bytes: bytes) -> None:
    db = Database(make_engine(db_url, pool_size=AGENTS + 2, max_overflow=0))
    try:
        boards = [f"{CLASS}:{i}" for i in range(AGENTS)]
        with db.transaction() as s:
            model, _ = store_model(s, kws_bytes, name="kws", tags={},
                                   analysis=analyze(kws_bytes, "kws"))
            for i, board in enumerate(boards):
                register_agent(s, f"agent-{i}", [board], version=None, lease_seconds=LEASE)
            for _ in range(JOBS):
                enqueue(s, model, [CLASS], runs=1, warmup=0, kernels="dsp", priority=0,
                        max_attempts=10)

        grants: dict[int, list[int]] = defaultdict(list)  # job id → lease ids granted
        errors: list[BaseException] = []
        lock = threading.Lock()

        def agent(index: int) -> None:
            rng = random.Random(index)
            board = boards[index]
            try:
                while True:
                    with db.transaction() as s:
                        got = lease(s, board, agent_name=f"agent-{index}", lease_seconds=LEASE)
                        if not isinstance(got, Lease):
                            return
                        lease_id, job_id = got.attempt.id, got.job.id
                    with lock:
                        grants[job_id].append(lease_id)
                    if rng.random() < FAILURE_RATE:
                        with db.transaction() as s:
                            report_failure(s, lease_id, f"flaky board {index}", retryable=True,
                                           agent_name=f"agent-{index}")
                        continue
                    body = MeasurementIn(**measurement(board, cycles=job_id))
                    for _ in range(2):  # a retried POST: the second one must be a no-op
                        with db.transaction() as s:
                            assert report_result(s, lease_id, body,
                                                 agent_name=f"agent-{index}").state == "done"
            except BaseException as e:  # surface it in the main thread
                errors.append(e)

        threads = [threading.Thread(target=agent, args=(i,)) for i in range(AGENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert not any(t.is_alive() for t in threads)

        with db.transaction(write=False) as s:
            states = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
            assert states == {"done": JOBS}
            per_job = s.execute(select(Measurement.job_id, func.count())
                                .group_by(Measurement.job_id)).all()
            assert len(per_job) == JOBS and all(n == 1 for _, n in per_job)
            assert all(m.cycles == m.job_id for m in s.scalars(select(Measurement)))
            attempts: dict[int, list[Attempt]] = defaultdict(list)
            for a in s.scalars(select(Attempt).order_by(Attempt.job_id, Attempt.attempt)):
                attempts[a.job_id].append(a)
            jobs = {j.id: j for j in s.scalars(select(Job))}
        for job_id, rows in attempts.items():
            assert sorted(grants[job_id]) == [a.id for a in rows]  # every grant recorded
            assert [a.attempt for a in rows] == list(range(1, len(rows) + 1))
            assert [a.outcome for a in rows] == ["failed"] * (len(rows) - 1) + ["done"]
            assert jobs[job_id].attempts == len(rows)
            for before, after in zip(rows, rows[1:], strict=False):
                # one lease at a time: the next attempt starts after the previous one ended
                assert before.ended_at is not None and before.ended_at <= after.started_at
        assert sum(len(v) for v in grants.values()) >= JOBS
    finally:
        db.dispose()
