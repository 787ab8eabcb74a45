"""Shared by the service benchmarks: a throwaway PostgreSQL database, ``mcuprof serve`` in a
subprocess on a free loopback port, and a made-up measurement for queue-only load.

Not a benchmark itself; ``lease_throughput.py`` and ``api_latency.py`` import it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from profiler_client.schemas import LayerOut, MeasurementIn
from service.db import migrate

PG_ADMIN_URL = os.environ.get("MCUPROF_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SERVER_START_TIMEOUT_S = 30.0
SAMPLE = Path(__file__).resolve().parent.parent / "bench_firmware" / "samples" / \
    "kws_tiny.tflite"
MCUPROF = [sys.executable, "-c", "from profiler_client.cli import main; main()"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A new, migrated database: ``postgresql`` (created in the cluster at
    MCUPROF_TEST_PG_URL, dropped afterwards) or ``sqlite`` (a temporary file)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="mcuprof-bench-") as tmp:
            url = f"sqlite:///{tmp}/mcuprof.db"
            migrate.upgrade(url)
            yield url
        return
    name = f"mcuprof_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        try:
            migrate.upgrade(url)
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def server(database_url: str, **env: str) -> Iterator[str]:
    """``mcuprof serve`` on a free loopback port (auth off); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MCUPROF_")}
    environ.update(MCUPROF_DATABASE_URL=database_url, MCUPROF_AUTH="off", **env)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([*MCUPROF, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=environ, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while True:
                try:
                    if httpx.get(f"{url}/openapi.json", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"mcuprof serve did not start:\n{log.read().decode()}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fake_measurement(device: str) -> MeasurementIn:
    """A plausible measurement of the sample model, for load that exercises the queue and
    the API only (no board runs)."""
    return MeasurementIn(
        device=device, output=[0.0] * 11 + [1.0], output_shape=[1, 12], cycles=3_764_600,
        cycles_per_run=[3_764_600] * 5, cycle_source="cycle-model", latency_ms=17.43,
        energy_mj=7.76, energy_source="modeled", arena_bytes=6016, plan_bytes=8504,
        ops=1_035_588, macs=516_288,
        layers=[LayerOut(index=i, op="CONV_2D", macs=40_000, ops=80_000, cycles=300_000)
                for i in range(12)],
        kernels="dsp", firmware_id="0123456789abcdef", plan_id="fedcba9876543210",
        serial_log=["> infer 5 1%", "< m-infer-done"])


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
