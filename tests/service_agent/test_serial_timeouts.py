"""The serial client's timeouts grow with the work a command asks for: a board that checks a
large plan or a long input, or runs many inferences, is slow to answer but not stuck. A fake
port answers each command after a set delay, longer than the client's fixed timeout."""

from __future__ import annotations

import pytest

from bench_firmware.errors import SerialTimeoutError
from bench_firmware.protocol.client import (
    CRC_S_PER_KIB,
    INFER_SLACK,
    RELOAD_S_PER_KIB,
    DutClient,
)
from tests.service_agent.delayed_port import DelayedPort

TIMEOUT_S = 0.2  # the client's fixed command timeout in these tests
DELAY_S = 0.6  # seconds the fake board takes to answer: longer than TIMEOUT_S


class SlowPort(DelayedPort):
    """A serial port whose board answers each command ``DELAY_S`` after it is sent."""

    port = "fake-slow"

    def __init__(self, answers: dict[str, list[str]]) -> None:
        super().__init__()
        self.answers = answers

    def write(self, data: bytes) -> int:
        command = data.decode().rstrip("%").split(" ")[0]
        self.later(DELAY_S, [*self.answers.get(command, []), "m-ready"])
        return len(data)


PLAN = ("m-plan-[board=1,ops=3,arena=100,capacity=1000,bytes=400000,input=10,output=2,"
        "region=500000,status=ok]")


def client() -> DutClient:
    port = SlowPort({"mp-reload": [PLAN], "mp-crc": ["m-input-crc-00000000"],
                     "infer": ["m-warmup-start-0", "m-warmup-done", "m-infer-start-4",
                               "m-infer-done", "m-lap-us-1", "m-lap-us-2",
                               "m-results-[5,-3]"]})
    return DutClient(port, timeout_s=TIMEOUT_S)  # type: ignore[arg-type]


def test_mp_reload_waits_in_proportion_to_the_plan() -> None:
    plan_bytes = 400_000  # ~390 KiB: a large model's plan
    assert TIMEOUT_S + plan_bytes / 1024 * RELOAD_S_PER_KIB > DELAY_S
    assert client().reload_plan(plan_bytes)["bytes"] == 400_000
    with pytest.raises(SerialTimeoutError, match="mp-reload"):
        client().reload_plan()  # a plan of unknown size: the fixed timeout, the floor


def test_the_input_crc_waits_in_proportion_to_the_input() -> None:
    size = 64 * 1024
    assert TIMEOUT_S + size / 1024 * CRC_S_PER_KIB > DELAY_S
    assert client().input_crc(size) == 0
    with pytest.raises(SerialTimeoutError, match="mp-crc"):
        client().input_crc()


def test_infer_waits_in_proportion_to_the_expected_runs() -> None:
    run_s = 0.1  # four runs of 0.1 s, with slack: more than DELAY_S
    assert INFER_SLACK * 4 * run_s > DELAY_S
    result = client().infer(4, 0, budget_s=0.0, run_s=run_s)
    assert result.runs == 4
    with pytest.raises(SerialTimeoutError, match="infer"):
        client().infer(4, 0, budget_s=0.0)
