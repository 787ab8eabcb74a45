"""The twins' stated error bands (``bench_firmware.backends.virtual.error_band``) against the
validation suite they are derived from.

The band of a board composes an independent check against silicon (issue #10) with how much
the cycle model changed since, on network-like code. The change is read here from the suite's
stored tables (``benchmarks/twin_fidelity.py`` before and after the flash-model fix, and the
MLPerf Tiny networks measured with the old and the new model), so a table that moves without
its band moving fails; and every ratio the suite compares with a published figure must lie
within the band it supports.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from bench_firmware.backends.virtual.error_band import (
    BANDS,
    EVIDENCE,
    NETWORK,
    band_of,
    error_band,
)
from bench_firmware.boards import BOARDS
from profiler_client.fitting.metrics import Prediction

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
ROW = re.compile(r"^(\S+)\s+(\S+)\s+((?:ART|L1) on, N WS|all on, 0 WS)\s+(\d+)\s+\S+"
                 r"(?:\s+\d+\s+\d+)?\s+(\S+)(?:\s+(\S+))?")
TWINS = sorted(name for name in BOARDS if name != "host")


def suite(name: str) -> dict[tuple[str, str, str], tuple[int, float, str | None]]:
    """(board, workload, setting) → (cycles, ratio to 0 WS, published figure) of a table."""
    rows = {}
    for line in (RESULTS / name).read_text().splitlines():
        m = ROW.match(line)
        if m:
            setting = "N WS" if "N WS" in m[3] else "0 WS"
            rows[(m[1], m[2], setting)] = (int(m[4]), float(m[5]), m[6])
    return rows


def shift(board: str, workload: str) -> float:
    """How much the flash-model fix changed ``workload``'s cycles at ``board``'s settings."""
    before = suite("twin_fidelity_before.txt")[(board, workload, "N WS")][0]
    after = suite("twin_fidelity_after.txt")[(board, workload, "N WS")][0]
    return after / before - 1.0


def mlperf_shifts(board: str) -> list[float]:
    """The same, on the MLPerf Tiny networks (old kernels, old and new cycle model)."""
    def cycles(name: str) -> dict[str, int]:
        rows = [json.loads(x) for x in (RESULTS / name).read_text().splitlines() if x.strip()]
        return {r["network"]: r["cycles"] for r in rows if r["board"] == board}

    old, new = cycles("mlperf_tiny_before.jsonl"), cycles("mlperf_tiny_before_current_model.jsonl")
    return [new[n] / old[n] - 1.0 for n in sorted(old)]


def test_every_twin_states_a_network_band() -> None:
    assert sorted(EVIDENCE) == TWINS
    for board in TWINS:
        band = error_band(board)
        assert band is not None and band.workload == NETWORK
        assert band.label == f"cycle model, ±{band.pct:g} % vs silicon"
        assert "independent check" in band.basis and "since the check" in band.basis


@pytest.mark.parametrize("board", TWINS)
def test_the_shift_is_the_suites(board: str) -> None:
    """The model's change since the independent check, as the band states it, is the one the
    suite's before/after tables show on SMLAD with weights in flash (and, where measured, on
    the MLPerf Tiny networks): the band's range covers all of them."""
    ev = EVIDENCE[board]
    measured = [shift(board, "mac_flash")]
    if board in ("nucleo-l4r5zi", "nucleo-f746zg"):
        measured += mlperf_shifts(board)
    assert ev.shift_lo == pytest.approx(min(measured), abs=5e-4)
    assert ev.shift_hi == pytest.approx(max(measured), abs=5e-4)


def test_the_cortex_m7_twins_did_not_change() -> None:
    """The flash fix left the M7 model alone, so the independent check's 13 % stands."""
    for board in ("nucleo-f746zg", "nucleo-f767zi"):
        for workload in ("scalar", "mem_flash", "mac_flash", "mac_sram"):
            assert shift(board, workload) == 0.0
        assert BANDS[(board, NETWORK)].pct == 13


@pytest.mark.parametrize("board", TWINS)
def test_the_band_is_the_composed_worst_case(board: str) -> None:
    ev = EVIDENCE[board]
    corners = [(1 + c) * (1 + s) - 1 for c in (ev.check_lo, ev.check_hi)
               for s in (ev.shift_lo, ev.shift_hi)]
    worst = 100 * max(abs(x) for x in corners)
    band = BANDS[(board, NETWORK)]
    assert worst <= band.pct < worst + 1
    assert band.lo_pct == pytest.approx(100 * min(corners), abs=0.05)
    assert band.hi_pct == pytest.approx(100 * max(corners), abs=0.05)


def test_the_stated_bands() -> None:
    """The table as the README and the dashboard state it."""
    assert {b: BANDS[(b, NETWORK)].pct for b in TWINS} == {
        "nucleo-f446re": 28, "nucleo-f746zg": 13, "nucleo-f767zi": 13, "nucleo-l4r5zi": 25}


@pytest.mark.parametrize("board", TWINS)
def test_the_suites_published_comparisons_lie_within_the_band(board: str) -> None:
    """Every row where the suite prints a published figure next to the twin's ratio (the 0-WS
    equivalence of code that fits the cache, the data-refill floor): the twin's ratio is within
    the band of the figure (a floor only from above)."""
    band = BANDS[(board, NETWORK)].pct / 100
    checked = 0
    for (name, _, setting), (_, ratio, published) in suite("twin_fidelity_after.txt").items():
        if name != board or setting != "N WS" or published in (None, "-"):
            continue
        assert published is not None
        if published.startswith(">="):
            floor = float(published[2:])
            assert floor * (1 - 0.005) <= ratio <= floor * (1 + band)
        else:
            assert abs(ratio / float(published) - 1) <= band
        checked += 1
    assert checked == 4


def test_only_cycle_model_cycles_of_a_twin_carry_a_band() -> None:
    assert band_of("nucleo-f446re", "cycle-model") is BANDS[("nucleo-f446re", NETWORK)]
    assert band_of("nucleo-f446re", "cycle-model", "virtual") is not None
    assert band_of("nucleo-f446re", "dwt-cyccnt", "pyocd") is None
    assert band_of("nucleo-f446re", "renode-estimate", "renode") is None
    assert band_of("nucleo-f446re", "cycle-model", "renode") is None
    assert band_of("nucleo-f446re", None) is None
    assert band_of("host", "cycle-model") is None
    assert error_band("nucleo-f446re", "scalar") is None  # no band stated for that class


def test_the_silicon_interval_of_a_twin_value() -> None:
    band = BANDS[("nucleo-f746zg", NETWORK)]
    lo, hi = band.interval(10.0)
    # |twin / silicon − 1| ≤ 13 % at both ends.
    assert 10.0 / lo - 1 == pytest.approx(0.13) and 1 - 10.0 / hi == pytest.approx(0.13)


def test_a_prediction_widens_by_the_band() -> None:
    p = Prediction(value=10.0, lo=9.0, hi=11.0, level=0.95)
    wide = p.widened(25.0)
    assert (wide.value, wide.level) == (10.0, 0.95)
    assert wide.lo == pytest.approx(9.0 / 1.25) and wide.hi == pytest.approx(11.0 / 0.75)
    assert p.widened(None) is p
    assert p.widened(0.0) == p
    with pytest.raises(ValueError):
        p.widened(100.0)
    assert math.isfinite(p.widened(99.0).hi)
