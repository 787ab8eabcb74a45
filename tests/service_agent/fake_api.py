"""A tiny in-memory stand-in for the mcuprof API, served through ``httpx.MockTransport``.

For unit tests of the client and the CLI only: it speaks the contract of
``profiler_client/schemas.py`` (routes, bodies, status codes) and nothing else. The real server is
tested against in ``test_topology.py``. Jobs advance one state per poll (queued → leased →
done) so ``wait`` has something to wait for.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from profiler_client.schemas import AnalysisOut, JobOut, LayerOut, MeasurementOut, ModelOut

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)

ANALYSIS = AnalysisOut(ops=1000, macs=500, param_bytes=64, plan_bytes=256, arena_bytes=128,
                       input_shape=[1, 4], output_shape=[1, 2],
                       layers=[LayerOut(index=0, op="FULLY_CONNECTED", macs=500, ops=1000)])


@dataclass
class FakeApi:
    """State and request handler. ``fail_next``: status codes (or exceptions) to answer the
    next requests with, before the real handling; ``requests``: every request seen."""

    models: dict[int, ModelOut] = field(default_factory=dict)
    jobs: dict[int, JobOut] = field(default_factory=dict)
    polls_to_finish: int = 2
    fail_job_devices: set[str] = field(default_factory=set)
    fail_next: list[int | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    uploads: list[dict[str, Any]] = field(default_factory=list)
    _polls: dict[int, int] = field(default_factory=dict)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_next:
            failure = self.fail_next.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return httpx.Response(failure, json={"detail": f"injected {failure}"})
        path = request.url.path
        method = request.method
        if method == "POST" and path == "/api/v1/models":
            return self._upload(request)
        if method == "GET" and path == "/api/v1/models":
            sha = request.url.params.get("sha256")
            found = [m for m in self.models.values() if not sha or m.sha256.startswith(sha)]
            return _json([m.model_dump(mode="json") for m in found])
        if m := re.fullmatch(r"/api/v1/models/(\d+)", path):
            model = self.models.get(int(m[1]))
            if model is None:
                return _json({"detail": f"no model {m[1]}"}, 404)
            return _json(model.model_dump(mode="json"))
        if m := re.fullmatch(r"/api/v1/models/(\d+)/measurements", path):
            return _json([j.measurement.model_dump(mode="json") for j in self.jobs.values()
                          if j.model_id == int(m[1]) and j.measurement is not None])
        if method == "POST" and path == "/api/v1/jobs":
            return self._submit(json.loads(request.content))
        if method == "GET" and path == "/api/v1/jobs":
            state = request.url.params.get("state")
            model_id = request.url.params.get("model_id")
            # A listing by model is how wait() polls many jobs: it counts as a poll of each.
            listed = [self._advance(j.id) if model_id else j for j in list(self.jobs.values())
                      if model_id is None or j.model_id == int(model_id)]
            return _json([j.model_dump(mode="json") for j in listed
                          if state is None or j.state == state])
        if m := re.fullmatch(r"/api/v1/jobs/(\d+)", path):
            return self._poll(int(m[1]))
        return _json({"detail": f"no route {method} {path}"}, 404)

    def _upload(self, request: httpx.Request) -> httpx.Response:
        fields = parse_multipart(request)
        self.uploads.append(fields)
        data = fields["file"][0]
        if data[4:8] != b"TFL3":
            return _json({"detail": "the file is not a .tflite flatbuffer (no TFL3 identifier); "
                                    "upload the converter's output"}, 422)
        digest = hashlib.sha256(data).hexdigest()
        for model in self.models.values():
            if model.sha256 == digest:
                return _json(model.model_dump(mode="json"), 200)
        tags = dict(t.decode().split("=", 1) for t in fields.get("tag", []))
        model = ModelOut(id=len(self.models) + 1, sha256=digest, name=fields["name"][0].decode(),
                         size_bytes=len(data), tags=tags, analysis=ANALYSIS, created_at=NOW)
        self.models[model.id] = model
        return _json(model.model_dump(mode="json"), 201)

    def _submit(self, body: dict[str, Any]) -> httpx.Response:
        if body["model_id"] not in self.models:
            return _json({"detail": f"no model {body['model_id']}; upload it first"}, 404)
        out = []
        for device in body["devices"]:
            job = JobOut(id=len(self.jobs) + 1, model_id=body["model_id"], device=device,
                         state="queued", runs=body["runs"], warmup=body["warmup"],
                         kernels=body["kernels"], attempts=0, max_attempts=3, error=None,
                         created_at=NOW, updated_at=NOW)
            self.jobs[job.id] = job
            out.append(job.model_dump(mode="json"))
        return _json(out, 201)

    def _poll(self, job_id: int) -> httpx.Response:
        if job_id not in self.jobs:
            return _json({"detail": f"no job {job_id}"}, 404)
        return _json(self._advance(job_id).model_dump(mode="json"))

    def _advance(self, job_id: int) -> JobOut:
        """The job one poll later (queued → leased → done or failed)."""
        job = self.jobs[job_id]
        polls = self._polls[job_id] = self._polls.get(job_id, 0) + 1
        if job.state == "queued" and polls >= 1:
            job = job.model_copy(update={"state": "leased", "attempts": 1})
        if job.state == "leased" and polls >= self.polls_to_finish:
            if job.device in self.fail_job_devices:
                job = job.model_copy(update={"state": "failed", "error": "board on fire"})
            else:
                job = job.model_copy(update={"state": "done", "measurement": measurement(job)})
        self.jobs[job_id] = job
        return job


def measurement(job: JobOut) -> MeasurementOut:
    return MeasurementOut(
        id=job.id, job_id=job.id, model_id=job.model_id, device=f"{job.device}:host-0",
        device_class=job.device, board=job.device.split(":")[1], cycles=180_000,
        cycles_per_run=[180_000] * job.runs, cycle_source="cycle-model", latency_ms=1.0,
        energy_mj=0.16, energy_source="modeled", arena_bytes=128, plan_bytes=256,
        flash_bytes=25_300, ops=1000, macs=500,
        layers=[LayerOut(index=0, op="FULLY_CONNECTED", macs=500, ops=1000, cycles=170_000)],
        output=[1.0, -3.0], kernels=job.kernels, firmware_id="0123456789abcdef",
        plan_id="fedcba9876543210", created_at=NOW)


def parse_multipart(request: httpx.Request) -> dict[str, list[bytes]]:
    """The fields of a multipart/form-data body: name -> values (file contents as bytes)."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, list[bytes]] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        assert name is not None, head
        fields.setdefault(name[1].decode(), []).append(value[:-2])  # the part ends in CRLF
    return fields


def _json(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)
