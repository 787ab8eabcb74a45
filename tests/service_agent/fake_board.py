"""A board for agent tests: plans run on the host build of the runtime (real outputs, through
ctypes); the cycle counts are made up. Faults are scripted per board with :class:`Script`.

Only the agent's tests use it: they check the agent's logic (leases, reports, retries, health,
shutdown) against the real server without paying for an emulator. The integration tests in
``test_topology.py`` run the real virtual boards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from bench_firmware import plan_format as pf
from bench_firmware.backends.base import RunResult
from bench_firmware.boards import Board, get_board
from bench_firmware.compiler import read_plan
from bench_firmware.errors import BoardError, DoesNotFitError
from bench_firmware.host import run_plan

BASE_CYCLES = 1_000_000  # made-up cycles of one inference (plus a little per plan byte)


@dataclass
class Script:
    """What one board (by full device name) does wrong."""

    fail_runs: set[int] = field(default_factory=set)  # n-th run() calls (1-based) that fail
    open_fails: bool = False  # open() raises (a board that does not boot)
    does_not_fit: bool = False  # load_plan says the arena does not fit
    run_delay_s: float = 0.0  # each run() takes this long
    cycle_scale: float = 1.0  # cycles × this (drift)
    flip_output: bool = False  # the first output byte comes back wrong
    started: threading.Event = field(default_factory=threading.Event)  # set when run() starts


class Farm:
    """Every FakeBoard made, and the scripts they follow. ``factory`` is the agent's
    ``backend_factory``."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.runs: dict[str, int] = {}
        self.lock = threading.Lock()

    def script(self, device: str) -> Script:
        with self.lock:
            return self.scripts.setdefault(device, Script())

    def factory(self, device: str) -> FakeBoard:
        return FakeBoard(device, self)


class FakeBoard:
    def __init__(self, device: str, farm: Farm) -> None:
        self.device = device
        self.board: Board = get_board(device)
        self.farm = farm
        self.plan: bytes | None = None
        self.is_open = False
        self.firmware_id = "fa4efa4efa4efa4e"
        self.firmware_bytes = 25_000
        self.transcript: list[str] = []

    def open(self) -> None:
        if self.farm.script(self.device).open_fails:
            raise BoardError(f"{self.device}: the firmware did not boot (scripted)")
        self.is_open = True
        with self.farm.lock:
            self.farm.opened.append(self.device)

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            with self.farm.lock:
                self.farm.closed.append(self.device)

    def __enter__(self) -> FakeBoard:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load_plan(self, plan: bytes) -> dict[str, int | str]:
        if not self.is_open:
            raise BoardError(f"{self.device} is not open")
        info = read_plan(plan, self.board)
        if self.farm.script(self.device).does_not_fit:
            raise DoesNotFitError("the arena does not fit (scripted)", what="arena",
                                  needed=1, available=0)
        self.plan = plan
        self.transcript.append(f"> mp-plan% ({info.model_id})")
        return {"status": "ok", "model": info.model_id}

    def run(self, input_bytes: bytes, *, runs: int, warmup: int,
            kernels: str = "dsp") -> RunResult:
        script = self.farm.script(self.device)
        with self.farm.lock:
            n = self.farm.runs[self.device] = self.farm.runs.get(self.device, 0) + 1
        script.started.set()
        if self.plan is None:
            raise BoardError(f"{self.device}: load_plan() must come before run()")
        if script.run_delay_s:
            time.sleep(script.run_delay_s)
        if n in script.fail_runs:
            raise BoardError(f"no answer from {self.device} while waiting for the answer to "
                             f"`infer {runs} {warmup}%` (scripted)")
        header = read_plan(self.plan).header
        output_bytes = _tensor_bytes(self.plan, header, "output_tensor")
        out = bytearray(run_plan(self.plan, np.frombuffer(input_bytes, dtype=np.uint8),
                                 output_bytes=output_bytes, kernels=kernels))
        if script.flip_output:
            out[0] ^= 0x55
        cycles = int((BASE_CYCLES + len(self.plan)) * script.cycle_scale)
        layer_count = int(header["n_ops"])  # type: ignore[call-overload]
        transcript = [*self.transcript, f"> infer {runs} {warmup}%", "< m-infer-done"]
        self.transcript = []
        return RunResult(output=bytes(out), cycles_per_run=[cycles + i for i in range(runs)],
                         layer_cycles=[cycles // layer_count] * layer_count,
                         lap_us=(0, runs * 1000), transcript=transcript)


def _tensor_bytes(plan: bytes, header: dict[str, object], which: str) -> int:
    """Bytes of the plan's input or output tensor (from its tensor record)."""
    index = int(header[which])  # type: ignore[call-overload]
    offset = int(header["tensors_off"]) + index * pf.TENSOR.size  # type: ignore[call-overload]
    return int(pf.TENSOR.unpack(plan, offset)["bytes"])  # type: ignore[call-overload]
