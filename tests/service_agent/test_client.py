"""Unit tests of the client library against ``httpx.MockTransport`` fakes (no server):
retries and backoff, errors and their messages, the agent calls, waiting."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench_firmware.errors import McuprofError, ModelError
from profiler_client.client import (
    BACKOFF_BASE_S,
    BACKOFF_JITTER,
    BACKOFF_MAX_S,
    ApiError,
    AuthError,
    Client,
    LeaseLostError,
    ModelRejectedError,
    NotFoundError,
    ServerUnavailableError,
    WaitTimeoutError,
    measurements_to_csv,
)
from profiler_client.errors import QueueError
from profiler_client.schemas import JobOut, MeasurementIn
from tests.service_agent.fake_api import NOW, FakeApi, measurement

SAMPLES = Path(__file__).resolve().parents[2] / "bench_firmware" / "samples"
KWS = SAMPLES / "kws_tiny.tflite"


class Clock:
    """Stands in for time.sleep: records every wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


def make(api: FakeApi | None = None, handler: Handler | None = None,
         **kwargs: object) -> tuple[Client, Clock]:
    clock = Clock()
    transport = httpx.MockTransport(handler) if handler else (api or FakeApi()).transport()
    client = Client("http://mcuprof.test", kwargs.pop("token", None),  # type: ignore[arg-type]
                    transport=transport, sleep=clock, **kwargs)  # type: ignore[arg-type]
    return client, clock


def test_retries_5xx_with_exponential_backoff_then_succeeds() -> None:
    api = FakeApi(fail_next=[503, 500, 502])
    client, clock = make(api)
    assert client.jobs() == []
    assert len(api.requests) == 4
    assert len(clock.waits) == 3
    for n, wait in enumerate(clock.waits):
        base = BACKOFF_BASE_S * 2 ** n
        assert base <= wait <= base * (1 + BACKOFF_JITTER)


def test_backoff_is_capped() -> None:
    api = FakeApi(fail_next=[503] * 9)
    client, clock = make(api, retries=9)
    client.jobs()
    assert max(clock.waits) <= BACKOFF_MAX_S * (1 + BACKOFF_JITTER)
    assert clock.waits[-1] >= BACKOFF_MAX_S


def test_retries_connection_errors() -> None:
    api = FakeApi(fail_next=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    client, clock = make(api)
    assert client.jobs() == []
    assert len(api.requests) == 3 and len(clock.waits) == 2


def test_gives_up_and_says_which_server_and_what_to_do() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    client, clock = make(handler=refuse, retries=2)
    with pytest.raises(ServerUnavailableError) as err:
        client.jobs()
    text = str(err.value)
    assert "http://mcuprof.test" in text and "mcuprof serve" in text
    assert "Connection refused" in text and "3 attempts" in text
    assert len(clock.waits) == 2


def test_persistent_5xx_points_at_the_server_log() -> None:
    client, _ = make(FakeApi(fail_next=[500] * 5), retries=2)
    with pytest.raises(ServerUnavailableError, match="keeps failing.*injected 500.*log"):
        client.jobs()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_4xx_is_never_retried(status: int) -> None:
    api = FakeApi(fail_next=[status, status])
    client, clock = make(api)
    with pytest.raises(ApiError) as err:
        client.jobs()
    assert len(api.requests) == 1 and clock.waits == []
    assert err.value.status_code == status
    assert err.value.detail == f"injected {status}"
    assert f"injected {status}" in str(err.value)


def test_submitting_jobs_is_not_repeated_when_the_answer_may_have_been_lost() -> None:
    api = FakeApi()
    client, _ = make(api)
    model = client.upload_model(KWS)
    api.fail_next = [500]
    with pytest.raises(ServerUnavailableError, match="the server failed"):
        client.submit(model.id, ["virtual:nucleo-f446re"])
    api.fail_next = [httpx.ReadTimeout("no answer")]
    with pytest.raises(ServerUnavailableError, match="ReadTimeout"):
        client.submit(model.id, ["virtual:nucleo-f446re"])
    assert api.jobs == {}
    # 503 (the application never saw it) and refused connections are safe to repeat.
    api.fail_next = [503, httpx.ConnectError("refused")]
    jobs = client.submit(model.id, ["virtual:nucleo-f446re"])
    assert [j.id for j in jobs] == [1] and len(api.jobs) == 1


def test_errors_carry_the_servers_detail() -> None:
    client, _ = make()
    with pytest.raises(NotFoundError, match=r"no job 7 \(GET /api/v1/jobs/7: 404 Not Found\)"):
        client.job(7)


def test_refused_model_is_a_model_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.tflite"
    bogus.write_bytes(b"this is not a flatbuffer")
    client, _ = make()
    with pytest.raises(ModelRejectedError, match="not a .tflite flatbuffer") as err:
        client.upload_model(bogus)
    assert isinstance(err.value, ModelError)


def test_validation_errors_are_flattened() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": [
            {"loc": ["body", "runs"], "msg": "Input should be less than or equal to 1000",
             "type": "less_than_equal"}]})

    client, _ = make(handler=handler)
    with pytest.raises(ApiError, match="runs: Input should be less than or equal to 1000"):
        client.jobs()


def test_auth_error_tells_how_to_get_a_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "missing or unknown token"})

    client, _ = make(handler=handler)
    with pytest.raises(AuthError, match="MCUPROF_TOKEN.*mcuprof token create"):
        client.jobs()


def test_token_and_server_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    monkeypatch.setenv("MCUPROF_SERVER", "http://farm.example:9000/")
    monkeypatch.setenv("MCUPROF_TOKEN", "s3cret")
    with Client(transport=httpx.MockTransport(handler)) as client:
        client.devices()
    assert str(seen[0].url) == "http://farm.example:9000/api/v1/devices"
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    monkeypatch.delenv("MCUPROF_SERVER")
    assert Client(transport=httpx.MockTransport(handler)).url == "http://127.0.0.1:8000"
    with pytest.raises(McuprofError, match="must start with http"):
        Client("farm.example:9000")


def test_upload_sends_file_name_and_tags_and_deduplicates() -> None:
    api = FakeApi()
    client, _ = make(api)
    first = client.upload_model(KWS, tags={"backbone": "kws", "width": "0.5"})
    again = client.upload_model(KWS.read_bytes(), name="kws again")
    assert first.id == again.id and first.tags == {"backbone": "kws", "width": "0.5"}
    fields = api.uploads[0]
    assert fields["file"][0] == KWS.read_bytes()
    assert fields["name"] == [b"kws_tiny.tflite"]
    assert fields["tag"] == [b"backbone=kws", b"width=0.5"]
    with pytest.raises(McuprofError, match="not key=value"):
        client.upload_model(KWS, tags=["backbone"])


def test_submit_uploads_then_queues_one_job_per_device() -> None:
    api = FakeApi()
    client, _ = make(api)
    jobs = client.submit(KWS, ["virtual:nucleo-f446re", "virtual:nucleo-f746zg"], runs=3,
                         warmup=2, kernels="ref")
    assert [(j.device, j.runs, j.warmup, j.kernels) for j in jobs] == [
        ("virtual:nucleo-f446re", 3, 2, "ref"), ("virtual:nucleo-f746zg", 3, 2, "ref")]
    body = json.loads(api.requests[-1].content)
    assert body["model_id"] == 1 and body["devices"] == ["virtual:nucleo-f446re",
                                                         "virtual:nucleo-f746zg"]
    with pytest.raises(McuprofError, match="runs"):
        client.submit(1, ["virtual:nucleo-f446re"], runs=0)
    with pytest.raises(McuprofError, match="at least one device"):
        client.submit(1, [])


def test_wait_polls_until_every_job_is_finished() -> None:
    api = FakeApi(fail_job_devices={"virtual:nucleo-l4r5zi"})
    client, clock = make(api)
    jobs = client.submit(KWS, ["virtual:nucleo-f446re", "virtual:nucleo-l4r5zi"])
    seen: list[list[str]] = []
    done = client.wait(jobs, poll_s=0.5, on_progress=lambda js: seen.append([j.state for j in js]))
    assert [j.state for j in done] == ["done", "failed"]
    assert done[0].measurement is not None and done[0].measurement.cycles == 180_000
    assert done[1].error == "board on fire"
    assert seen[0] == ["queued", "queued"] and seen[-1] == ["done", "failed"]
    assert set(clock.waits) == {0.5}
    # Finished jobs are not polled again.
    polled = [r.url.path for r in api.requests if r.url.path.startswith("/api/v1/jobs/")]
    assert polled.count("/api/v1/jobs/1") == 2


def test_wait_lists_many_jobs_of_one_model_in_one_request() -> None:
    api = FakeApi()
    client, _ = make(api)
    devices = ["virtual:nucleo-f446re", "virtual:nucleo-f746zg", "virtual:nucleo-f767zi",
               "virtual:nucleo-l4r5zi"]
    jobs = client.submit(KWS, devices) + client.submit(SAMPLES / "mobilenet_tiny.tflite",
                                                           devices[:1])
    done = client.wait(jobs, poll_s=0)
    assert [j.state for j in done] == ["done"] * 5 and [j.id for j in done] == [1, 2, 3, 4, 5]
    polls = [(r.url.path, r.url.params.get("model_id")) for r in api.requests
             if r.method == "GET" and r.url.path.startswith("/api/v1/jobs")]
    # Model 1's four jobs: one listing per poll; model 2's single job: its own GET.
    assert polls.count(("/api/v1/jobs", "1")) == polls.count(("/api/v1/jobs/5", None)) == 2
    assert not any(path in ("/api/v1/jobs/1", "/api/v1/jobs/2") for path, _ in polls)


def test_wait_times_out_with_the_jobs_it_had() -> None:
    api = FakeApi(polls_to_finish=10**6)
    client, _ = make(api)
    jobs = client.submit(KWS, ["virtual:nucleo-f446re"])
    with pytest.raises(WaitTimeoutError, match="1 of 1 jobs still running") as err:
        client.wait(jobs, poll_s=0.001, timeout_s=0.01)
    assert err.value.jobs[0].state == "leased"
    assert isinstance(err.value, QueueError)


def test_results_of_a_job_a_model_path_and_a_model_id() -> None:
    api = FakeApi()
    client, _ = make(api)
    jobs = client.submit(KWS, ["virtual:nucleo-f446re"])
    client.wait(jobs, poll_s=0)
    assert [m.job_id for m in client.results("job:1")] == [1]
    assert [m.job_id for m in client.results(KWS)] == [1]
    assert [m.job_id for m in client.results(str(KWS))] == [1]
    assert [m.job_id for m in client.results(1)] == [1]
    assert [m.job_id for m in client.results("model:1")] == [1]
    assert [m.job_id for m in client.results(api.models[1].sha256[:12])] == [1]
    with pytest.raises(NotFoundError, match="no model with SHA-256.*mcuprof submit"):
        client.results(SAMPLES / "mobilenet_tiny.tflite")
    with pytest.raises(McuprofError, match="job id 'x' is not a number"):
        client.results("job:x")
    with pytest.raises(McuprofError, match="no such file, and not a model id"):
        client.results("missing.tflite")


def test_csv_has_one_flat_row_per_measurement() -> None:
    job = FakeApi()
    client, _ = make(job)
    jobs = client.wait(client.submit(KWS, ["virtual:nucleo-f446re", "virtual:nucleo-f746zg"]),
                       poll_s=0)
    text = measurements_to_csv(j.measurement for j in jobs if j.measurement)
    lines = text.splitlines()
    assert len(lines) == 3 and "layers" not in lines[0] and "cycles_per_run" in lines[0]
    assert "180000 180000" in lines[1]
    assert measurements_to_csv([]) == ""


PYOCD_BOARD = "pyocd:nucleo-f746zg:066DFF000000000000000001"


def test_agent_calls() -> None:
    routes: dict[tuple[str, str], httpx.Response] = {}
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes[(request.method, request.url.path)]

    job = leased_job().model_dump(mode="json")
    routes[("POST", "/api/v1/agents")] = httpx.Response(200, json={
        "id": 4, "name": "rack1", "devices": []})
    routes[("POST", "/api/v1/agents/4/heartbeat")] = httpx.Response(200, json={
        "extended": [10], "lost": [11], "lease_seconds": 30.0})
    routes[("POST", "/api/v1/leases")] = httpx.Response(204)
    routes[("POST", "/api/v1/leases/10/result")] = httpx.Response(409, json={
        "detail": "lease 10 is not held by this agent (expired at ...)"})
    routes[("POST", "/api/v1/leases/10/failure")] = httpx.Response(200, json=job)
    routes[("POST", "/api/v1/devices/virtual:nucleo-f446re:rack1-0/health")] = httpx.Response(
        200, json={"name": "virtual:nucleo-f446re:rack1-0", "device_class": "virtual:nucleo-f446re",
                   "board": "nucleo-f446re", "backend": "virtual", "agent": "rack1",
                   "health": "bad", "health_detail": "output differs", "last_seen": None,
                   "busy": False})
    client, _ = make(handler=handler, token="agent-token")

    agent = client.register_agent("rack1", ["virtual:nucleo-f446re:rack1-0", PYOCD_BOARD],
                                  version="0.1", energy_monitors={PYOCD_BOARD})
    assert agent.id == 4
    assert json.loads(seen[-1].content) == {
        "name": "rack1", "boards": [
            {"device": "virtual:nucleo-f446re:rack1-0", "energy_monitor": False},
            {"device": PYOCD_BOARD, "energy_monitor": True}], "version": "0.1"}
    beat = client.heartbeat(4, [10, 11])
    assert beat.lost == [11] and json.loads(seen[-1].content) == {"leases": [10, 11]}
    assert client.lease("virtual:nucleo-f446re:rack1-0") is None

    m = measurement(leased_job())
    result = MeasurementIn(device=m.device, output=m.output, output_shape=[1, 2],
                           cycles=m.cycles, cycles_per_run=m.cycles_per_run,
                           latency_ms=m.latency_ms, energy_mj=m.energy_mj,
                           energy_source="modeled", arena_bytes=1, plan_bytes=2, ops=3, macs=4,
                           layers=m.layers)
    with pytest.raises(LeaseLostError, match="not held by this agent") as err:
        client.report_result(10, result)
    assert isinstance(err.value, QueueError)
    failed = client.report_failure(10, "serial timeout", retryable=True, serial_log=["> name%"])
    assert failed.id == 1
    assert json.loads(seen[-1].content) == {"error": "serial timeout", "retryable": True,
                                            "serial_log": ["> name%"]}
    health = client.report_health("virtual:nucleo-f446re:rack1-0", False, "output differs")
    assert health.health == "bad"
    assert all(r.headers["authorization"] == "Bearer agent-token" for r in seen)


def leased_job() -> JobOut:
    return JobOut(id=1, model_id=1, device="virtual:nucleo-f446re", state="leased", runs=5,
                  warmup=1, kernels="dsp", attempts=1, max_attempts=3, error=None,
                  created_at=NOW, updated_at=NOW)


def test_lease_returns_the_job() -> None:
    job = leased_job()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "lease_id": 3, "job": job.model_dump(mode="json"), "model_sha256": "ab" * 32,
            "model_url": "/api/v1/models/1/file", "expires_at": NOW.isoformat(),
            "lease_seconds": 30.0})

    client, _ = make(handler=handler)
    lease = client.lease("virtual:nucleo-f446re:rack1-0")
    assert lease is not None and lease.lease_id == 3 and lease.job.id == 1


def test_lease_is_not_retried_after_a_lost_answer() -> None:
    api = FakeApi(fail_next=[500])
    client, clock = make(api)
    with pytest.raises(ServerUnavailableError):
        client.lease("virtual:nucleo-f446re:rack1-0")
    assert len(api.requests) == 1 and clock.waits == []


def test_model_file_follows_the_lease_url() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"TFL3 bytes")

    client, _ = make(handler=handler)
    assert client.model_file("/api/v1/models/1/file") == b"TFL3 bytes"
    assert client.model_file(2) == b"TFL3 bytes"
    assert client.model_file("http://elsewhere.test/m.tflite") == b"TFL3 bytes"
    assert seen == ["http://mcuprof.test/api/v1/models/1/file",
                    "http://mcuprof.test/api/v1/models/2/file", "http://elsewhere.test/m.tflite"]


def test_an_answer_off_contract_is_reported_as_such() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "not a job"})

    client, _ = make(handler=handler)
    with pytest.raises(ApiError, match="does not match this client's contract"):
        client.job(1)
