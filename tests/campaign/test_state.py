"""The campaign's pure parts: the width-restricted sub-space, the plan, device checks, the
journal (replay, torn lines, a foreign campaign), and the errors a user meets before any
model is converted. No TensorFlow, no boards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from profiler_client.cli import main
from profiler_client.client import Client
from search.campaign import (
    STATE_FILE,
    CampaignError,
    CampaignEvent,
    CampaignState,
    LineProgress,
    ServerNotFoundError,
    check_devices,
    default_name,
    plan_models,
    restrict_widths,
    server_check,
)
from search.sampler import sample
from search.spaces import Architecture, get_space
from tests.service_agent.conftest import free_port

IDENTITY = {"name": "kws-seed0", "space": "kws", "seed": 0, "max_width": None,
            "input_shape": [49, 10, 1], "weight_seed": 0}


def test_restricted_space_samples_small_members_of_the_full_space() -> None:
    small = restrict_widths("kws", 16)
    for node in small.nodes:
        if node.kind == "width":
            assert node.choices == (4, 8, 12, 16)
        else:
            assert node.choices == ("block", "skip")
    archs = sample(small, 30, seed=0)
    assert len({a.id for a in archs}) == 30
    for arch in archs:
        assert arch.space == "kws"  # the same backbone tag as the full space
        assert Architecture.from_dict(arch.to_dict()) == arch
        assert all(v is None or v in ("block", "skip") or (isinstance(v, int) and v <= 16)
                   for v in arch.choices.values())
    # A node whose smallest choice is above the cap keeps that one choice.
    vww = restrict_widths("vww", 1)
    assert all(n.choices == (min(c for c in get_space("vww").node_map[n.name].choices),)
               for n in vww.nodes)
    with pytest.raises(CampaignError, match="at least 1 channel"):
        restrict_widths("kws", 0)


def test_plan_is_seeded_and_a_prefix_of_a_larger_campaign(tmp_path: Path) -> None:
    ten = plan_models("kws", 10, 3, tmp_path, max_width=16)
    four = plan_models("kws", 4, 3, tmp_path, max_width=16)
    assert [j.name for j in four] == [j.name for j in ten[:4]]
    assert [j.name for j in plan_models("kws", 4, 3, tmp_path, max_width=16)] == \
        [j.name for j in four]
    assert all(j.backbone == "kws" and j.out_dir == str(tmp_path) for j in ten)
    assert "widths <= 16" in ten[0].source and "seed 3, index 0" in ten[0].source
    assert default_name("kws", 3, max_width=16) == "kws-seed3-w16"
    assert default_name("vww", 0, input_size=96) == "vww-seed0-96px"


def test_devices_are_checked_like_the_server_does() -> None:
    assert check_devices(["virtual:nucleo-f446re", " virtual:nucleo-f446re",
                          "virtual:nucleo-f746zg"]) == ["virtual:nucleo-f446re",
                                                        "virtual:nucleo-f746zg"]
    with pytest.raises(CampaignError, match="unknown board 'nucleo-f999'.*boards: nucleo-f446re"):
        check_devices(["virtual:nucleo-f999"])
    with pytest.raises(CampaignError, match="names one board"):
        check_devices(["virtual:nucleo-f446re:rack-0"])
    with pytest.raises(CampaignError, match="at least one device"):
        check_devices([])


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_journal_replays_to_the_same_state(tmp_path: Path) -> None:
    with CampaignState.open(tmp_path, IDENTITY) as state:
        state.record("converted", name="kws-a", sha256="aa", ops=10, macs=5)
        state.record("uploaded", name="kws-a", server="S", model_id=7, sha256="aa")
        state.record("submitted", name="kws-a", server="S", device="virtual:nucleo-f446re",
                     job_id=11)
        state.record("submitted", name="kws-a", server="S", device="virtual:nucleo-f746zg",
                     job_id=12)
        state.record("finished", name="kws-a", server="S", device="virtual:nucleo-f446re",
                     job_id=11, state="done", error=None)
        state.record("conversion_failed", name="kws-b", error="boom")
    with CampaignState.open(tmp_path, IDENTITY) as again:
        assert again.models == state.models
        rec = again.models["kws-a"]
        assert rec.model_ids == {"S": 7}
        assert rec.jobs[("S", "virtual:nucleo-f446re")].finished
        assert not rec.jobs[("S", "virtual:nucleo-f746zg")].finished
        assert again.models["kws-b"].conversion_error == "boom"
        # The server lost the model: its upload and jobs there are forgotten.
        again.record("reset", name="kws-a", server="S")
    with CampaignState.open(tmp_path, IDENTITY) as again:
        assert again.models["kws-a"].jobs == {} and again.models["kws-a"].model_ids == {}
        # New bytes for the same name (rebuilt): the old upload no longer stands.
        again.record("uploaded", name="kws-a", server="S", model_id=8, sha256="aa")
        again.record("converted", name="kws-a", sha256="bb", ops=10, macs=5)
    with CampaignState.open(tmp_path, IDENTITY) as again:
        assert again.models["kws-a"].model_ids == {}


def test_one_process_at_a_time_runs_a_campaign(tmp_path: Path) -> None:
    with CampaignState.open(tmp_path, IDENTITY):
        with pytest.raises(CampaignError, match="another process is running the campaign"):
            CampaignState.open(tmp_path, IDENTITY)
    CampaignState.open(tmp_path, IDENTITY).close()  # released


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    with CampaignState.open(tmp_path, IDENTITY) as state:
        state.record("converted", name="kws-a", sha256="aa", ops=10, macs=5)
    path = tmp_path / STATE_FILE
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"e":"uploaded","name":"kws-a","ser')  # the crash hit mid-write
    with CampaignState.open(tmp_path, IDENTITY) as again:
        assert path.read_bytes() == whole
        assert again.models["kws-a"].model_ids == {}
        again.record("uploaded", name="kws-a", server="S", model_id=1, sha256="aa")
    assert [e["e"] for e in _events(path)] == ["campaign", "converted", "uploaded"]


def test_a_broken_line_inside_the_journal_is_an_error(tmp_path: Path) -> None:
    with CampaignState.open(tmp_path, IDENTITY) as state:
        state.record("conversion_failed", name="x", error="e")
    path = tmp_path / STATE_FILE
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    with pytest.raises(CampaignError, match="line 2 is not a JSON object"):
        CampaignState.open(tmp_path, IDENTITY)


def test_another_campaign_in_the_folder_is_refused(tmp_path: Path) -> None:
    CampaignState.open(tmp_path, IDENTITY).close()
    with pytest.raises(CampaignError, match=r"holds another campaign \(seed=0; this one has "
                                            r"seed=1\)"):
        CampaignState.open(tmp_path, {**IDENTITY, "seed": 1})
    (tmp_path / STATE_FILE).write_text('{"e": "run"}\n')
    with pytest.raises(CampaignError, match="not a campaign journal"):
        CampaignState.open(tmp_path, IDENTITY)


def test_an_unreachable_server_says_how_to_start_one() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", retries=0) as client:
        with pytest.raises(ServerNotFoundError) as info:
            server_check(client, default=True)
    message = str(info.value)
    assert "no mcuprof server answers at http://127.0.0.1:" in message
    assert "`mcuprof demo`" in message and "mcuprof serve" in message
    assert "--local" in message


def test_cli_without_a_server_offers_local(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCUPROF_SERVER", raising=False)
    monkeypatch.setattr("profiler_client.client.DEFAULT_SERVER",
                        f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(main, ["campaign", "--space", "kws", "--n", "3", "--device",
                                       "virtual:nucleo-f446re", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "no mcuprof server answers" in result.stderr
    assert "add --local" in " ".join(result.stderr.split())
    assert not (tmp_path / "c").exists()  # nothing was converted


@pytest.mark.parametrize("args, message", [
    (["--device", "virtual:nucleo-f999"], "unknown board 'nucleo-f999'"),
    (["--device", "pyocd:nucleo-f446re", "--local"], "--local runs virtual boards only"),
    (["--device", "virtual:nucleo-f446re", "--local", "--server", "http://x:1"],
     "--local runs its own server"),
    (["--device", "virtual:nucleo-f446re", "--local", "--n", "0"], "at least 1 model"),
    (["--device", "virtual:nucleo-f446re", "--local", "--input-size", "64"],
     "only the vww space"),
])
def test_bad_options_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["campaign", "--space", "kws", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


def test_line_progress_reports_milestones() -> None:
    lines: list[str] = []
    progress = LineProgress(lines.append)
    progress(CampaignEvent("start", total=2, devices=("virtual:nucleo-f446re",)))
    progress(CampaignEvent("converted", name="a", detail="reused"))
    progress(CampaignEvent("conversion_failed", name="b", detail="boom"))
    progress(CampaignEvent("submitted", name="a", device="virtual:nucleo-f446re"))
    progress(CampaignEvent("submitted", name="c", device="virtual:nucleo-f446re",
                           detail="earlier"))
    progress(CampaignEvent("waiting", total=1))
    assert lines == ["2 models on virtual:nucleo-f446re",
                     "conversion failed: b: boom",
                     "converted 1 of 2 (1 reused, 1 failed) in 0.0 s",
                     "2 jobs (1 from earlier runs or the server); waiting for the 1 not "
                     "finished yet"]
