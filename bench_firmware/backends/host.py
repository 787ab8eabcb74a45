"""The host build of the firmware as a board backend: outputs only, no cycle counter."""

from __future__ import annotations

from bench_firmware.backends.base import RunResult
from bench_firmware.boards import HOST, Board
from bench_firmware.errors import BoardError
from bench_firmware.protocol import DutClient, HostDut


class HostBoard:
    """``host``: the same firmware sources compiled for this machine, spoken to over a pty.

    The host program reads its plan at start, so ``load_plan`` (re)starts it."""

    def __init__(self, device: str = "host") -> None:
        self.device = device
        self.board: Board = HOST
        self._dut: HostDut | None = None
        self._client: DutClient | None = None

    def open(self) -> None:
        """Nothing to do until a plan arrives: the host program starts with its plan."""

    def close(self) -> None:
        if self._dut is not None:
            dut, self._dut, self._client = self._dut, None, None
            dut.__exit__(None, None, None)

    def load_plan(self, plan: bytes) -> dict[str, int | str]:
        self.close()
        self._dut = HostDut(plan)
        self._client = self._dut.__enter__()
        return self._client.plan_status()

    def run(self, input_bytes: bytes, *, runs: int, warmup: int,
            kernels: str = "dsp") -> RunResult:
        if self._client is None:
            raise BoardError("host board: load_plan() must come before run()")
        client = self._client
        client.set_kernels(kernels)
        client.load_input(input_bytes)
        result = client.infer(runs, warmup)
        return RunResult(output=result.output_bytes, cycles_per_run=[], layer_cycles=[],
                         lap_us=result.lap_us, transcript=client.take_transcript(),
                         warnings=list(result.warnings))

    def __enter__(self) -> HostBoard:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
