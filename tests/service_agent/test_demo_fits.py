"""``mcuprof demo``'s fit set end to end, CI-sized: the real server on a loopback port, a real
virtual board, the first models of the shipped fit set profiled, and the stored
latency-vs-ops line the dashboard and ``mcuprof fits`` show; and the closing note that says
where to look. (``make run`` profiles all of them on every board.)"""

from __future__ import annotations

import functools
from pathlib import Path

import httpx
import pytest

from profiler_client.fitting.linear import MIN_POINTS
from service import demo as demo_mod
from service.demo import (
    FIT_SET_NAME,
    follow_fit_set,
    run_demo,
    show_fits,
    start_demo,
    submit_fit_set,
)
from tests.service_agent.conftest import free_port

pytestmark = pytest.mark.slow

BOARD = "nucleo-f746zg"  # the fastest twin to emulate
DEVICE = f"virtual:{BOARD}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MCUPROF_SERVER", "MCUPROF_TOKEN", "MCUPROF_TOKEN_FILE",
                 "MCUPROF_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_fit_set_gives_a_board_a_stored_latency_line(tmp_path: Path) -> None:
    lines: list[str] = []
    demo = start_demo(port=free_port(), boards=[BOARD], echo=lines.append)
    try:
        jobs = submit_fit_set(demo, echo=lines.append, limit=MIN_POINTS)
        assert [j.device for j in jobs] == [DEVICE] * MIN_POINTS
        finished = follow_fit_set(demo, jobs, echo=lines.append, timeout_s=300)
        assert [j.state for j in finished] == ["done"] * MIN_POINTS
        assert lines[-1].startswith(f"fit set: {MIN_POINTS} of {MIN_POINTS} jobs done in ")

        [fit] = show_fits(demo, echo=lines.append)
        assert (fit.device_class, fit.backbone, fit.kind) == (DEVICE, "kws", "ops_line")
        assert fit.n == fit.n_models == MIN_POINTS and fit.a_ms_per_op and fit.a_ms_per_op > 0
        assert lines[-1].lstrip().startswith(f"{DEVICE}  latency_ms = ")
        # Stored: what `mcuprof fits` and the dashboard's device page read.
        assert [f.version for f in demo.client.fits(device=DEVICE, backbone="kws",
                                                    kind="ops_line")] == [fit.version]
        with httpx.Client() as browser:
            browser.get(demo.login_url)
            page = browser.get(f"{demo.url}/device/{DEVICE}").text
        assert fit.version in page
        # Tagged as a campaign's models are.
        models = demo.client.models(tag=f"campaign={FIT_SET_NAME}")
        assert len(models) == MIN_POINTS
        assert all(m.tags["backbone"] == "kws" and m.tags["source"] == FIT_SET_NAME
                   for m in models)
        # A second demo on the same database profiles nothing again.
        again = submit_fit_set(demo, echo=lines.append, limit=MIN_POINTS)
        assert sorted(j.id for j in again) == sorted(j.id for j in jobs)
        assert lines[-1] == f"fit set: {MIN_POINTS} jobs ({MIN_POINTS} from an earlier run " \
                            f"on this database)"
    finally:
        demo.stop()


def test_run_demo_ends_with_fits_and_says_where_to_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_mod, "submit_fit_set",
                        functools.partial(submit_fit_set, limit=MIN_POINTS))
    lines: list[str] = []
    run_demo(port=free_port(), boards=[BOARD], echo=lines.append, forever=False)
    text = "\n".join(lines)
    assert "2 of 2 jobs done" in text  # the samples, as before
    assert f"fit set: {MIN_POINTS} of {MIN_POINTS} jobs done" in text
    look = lines[lines.index("what to look at first:"):]
    assert look[1].startswith("  1. the dashboard (this link signs your browser in, once): "
                              "http://127.0.0.1:")
    assert "/login?code=" in look[1]
    assert look[2].endswith(f"/device/{DEVICE}")
    assert "mcuprof fits --backbone kws" in look[4]
    # kws_tiny (a sample tagged backbone=kws) joins the fit set's line.
    [line] = [x for x in lines if x.lstrip().startswith(f"{DEVICE}  latency_ms")]
    assert f"n {MIN_POINTS + 1} ({MIN_POINTS + 1} models)" in line


@pytest.mark.parametrize(("samples", "fit_set"), [(False, True), (True, False)])
def test_no_samples_or_no_fits_skips_the_fit_set(tmp_path: Path, samples: bool,
                                                 fit_set: bool) -> None:
    # samples=False is what `mcuprof campaign --local` starts: a server for its own jobs.
    lines: list[str] = []
    run_demo(port=free_port(), boards=[], echo=lines.append, forever=False, samples=samples,
             fit_set=fit_set)
    assert not any("fit set" in line or "latency_ms" in line for line in lines)
    assert "what to look at first:" in lines
