"""A bounded fuzzing run of the whole REST API (``tests/fuzz/api_fuzz.py``): no request,
however malformed, gets a 5xx. ``benchmarks/fuzz_api.py`` runs the same for longer."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.fuzz.api_fuzz import fuzz_app

EXAMPLES = 15  # cases per operation and mode: about a minute on two cores
SEED = 20261205  # the same cases every run (derandomized), so a finding reproduces


def test_no_request_gets_a_server_error(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)  # refused requests log warnings by design
    report = fuzz_app(f"sqlite:///{tmp_path / 'fuzz.db'}", examples=EXAMPLES, seed_value=SEED)
    assert report.operations >= 20 and report.cases >= report.operations * EXAMPLES
    assert not report.server_errors and report.server_error_count == 0, \
        report.summary() + "\n" + "\n".join(report.server_errors)
    assert not report.failures, report.summary() + "\n" + "\n".join(report.failures)
