"""Search spaces, architectures and the sampler: pure Python, no TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from search.errors import InvalidArchitectureError, SearchError, UnknownNameError
from search.network import AvgPool, Conv, Dense, DepthwiseConv, Flatten, Network, Residual
from search.presets import PRESETS, get_preset
from search.sampler import sample
from search.spaces import (
    DS_WIDTHS,
    SKIP,
    SPACES,
    Architecture,
    get_space,
    tags_for,
    width_steps,
)
from tests.conftest import REPO_ROOT

SPACE_NAMES = sorted(SPACES)


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_samples_are_valid_architectures_of_their_space(space: str) -> None:
    sp = get_space(space)
    json.dumps(sp.describe())  # the description the server and the supernet read
    archs = sample(space, 40, seed=3)
    assert len(archs) == 40 and len(set(archs)) == 40
    for arch in archs:
        assert arch.space == space
        assert arch.input_shape == sp.input_shape
        assert list(arch.choices) == [n.name for n in sp.nodes]
        for node in sp.nodes:
            value = arch.choices[node.name]
            if value is None:  # only nodes of skipped blocks are unset
                assert node.active_if is not None and arch.choices[node.active_if] == SKIP
            else:
                assert value in node.choices
        net = arch.network()
        assert net.output_shape == (sp.head.classes,)
        assert net.macs() > 0
        assert Architecture.from_json(arch.to_json()) == arch


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_a_seed_reproduces_its_sample_and_other_seeds_differ(space: str) -> None:
    a = sample(space, 12, seed=7)
    b = sample(space, 12, seed=7)
    assert [x.to_json() for x in a] == [x.to_json() for x in b]
    assert [x.id for x in sample(space, 5, seed=7)] == [x.id for x in a[:5]]  # a prefix
    c = sample(space, 12, seed=8)
    assert {x.id for x in a}.isdisjoint({x.id for x in c})


def test_sampling_is_uniform_over_each_nodes_choices() -> None:
    archs = sample("ad", 600, seed=1)
    kept = [a.choices["ds2.depth"] for a in archs].count("block")
    assert 240 < kept < 360  # two choices: about half
    stems = [a.choices["stem.width"] for a in archs]
    assert min(stems) < 40 and max(stems) > 240  # spread over 4..276


def test_sampling_imports_no_tensorflow() -> None:
    code = ("import sys; from search.sampler import sample; import search.presets, search.cli;"
            "[a.network().macs() for s in ('kws','vww','ad') for a in sample(s, 3, 0)];"
            "import profiler_client.cli;"
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules];"
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_architecture_json_round_trip_and_stable_id() -> None:
    arch = get_preset("micronet-kws-s").architecture()
    assert arch is not None
    data = json.loads(arch.to_json())
    assert data["space"] == "kws" and data["input_shape"] == [49, 10, 1]
    again = Architecture.from_json(arch.to_json())
    assert again == arch and again.id == arch.id and hash(again) == hash(arch)
    # Ids are tags on the server: a change here orphans every stored measurement.
    assert arch.id == "213d5d817971"
    assert arch.name == "kws-213d5d817971"
    assert tags_for(arch) == {"backbone": "kws", "arch": "213d5d817971"}


def test_widths_of_skipped_blocks_do_not_change_the_architecture() -> None:
    base = sample("kws", 1, seed=0)[0].choices
    a = dict(base, **{"ds9.depth": "skip", "ds9.width": 8})
    b = dict(base, **{"ds9.depth": "skip", "ds9.width": 200})
    assert Architecture("kws", a) == Architecture("kws", b)
    assert Architecture("kws", a).choices["ds9.width"] is None


@pytest.mark.parametrize("choices, message", [
    ({"stem.width": 6}, "not a choice of kws.stem.width"),
    ({"nope": 4}, "no decision node"),
    ({"ds6.depth": "maybe"}, "not a choice of kws.ds6.depth"),
])
def test_invalid_choices_are_refused_with_the_node(choices: dict, message: str) -> None:
    base = dict(sample("kws", 1, seed=0)[0].choices)
    base.update({"ds6.depth": "block", "ds6.width": 8})
    base.update(choices)
    with pytest.raises(InvalidArchitectureError, match=message):
        Architecture("kws", base)


def test_missing_choice_is_refused() -> None:
    choices = dict(sample("ad", 1, seed=0)[0].choices)
    choices["ds1.depth"] = "block"
    choices.pop("ds1.width")
    with pytest.raises(InvalidArchitectureError, match="lacks a choice for 'ds1.width'"):
        Architecture("ad", choices)


def test_unknown_space_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="valid search spaces: ad, kws, vww"):
        sample("cifar", 3)
    with pytest.raises(UnknownNameError, match="micronet-kws-s"):
        get_preset("micronet-kws-xl")
    with pytest.raises(SearchError, match="at least 1"):
        sample("kws", 0)


def test_kws_space_definition() -> None:
    sp = get_space("kws")
    nodes = sp.node_map
    assert sp.input_shape == (49, 10, 1)
    assert DS_WIDTHS[0] == 4 and DS_WIDTHS[-1] == 276 and all(w % 4 == 0 for w in DS_WIDTHS)
    assert [n for n in nodes if n.endswith(".depth")] == [f"ds{i}.depth" for i in (6, 7, 8, 9)]
    assert len([n for n in nodes if n.endswith(".width")]) == 10  # stem + 9 DS blocks
    # Everything at its widest and deepest: DS-CNN(L) + 4 extra blocks of 276.
    widest = {n.name: (max(n.choices) if n.kind == "width" else "block") for n in sp.nodes}
    net = Architecture("kws", widest).network()
    shapes = net.shapes()
    assert net.layers[0] == Conv(276, (10, 4), (1, 1), act="relu6")
    assert shapes[1] == (49, 10, 276) and shapes[2] == (25, 5, 276)  # ds1 strides 2
    assert sum(isinstance(x, DepthwiseConv) for x in net.layers) == 9
    assert net.layers[-3:] == (AvgPool((25, 5)), Flatten(), Dense(12))


def test_ad_space_skips_average_pool_where_a_block_downsamples() -> None:
    choices = {n.name: (n.choices[0] if n.kind == "width" else "block")
               for n in get_space("ad").nodes}
    choices.update({"ds1.depth": SKIP, "ds3.depth": SKIP})
    net = Architecture("ad", choices).network()
    assert net.layers[1] == AvgPool((2, 2), (2, 2), padding="same")  # ds1 skipped
    assert sum(isinstance(x, DepthwiseConv) for x in net.layers) == 3  # ds2, ds4, ds5
    assert net.shapes()[-4] == (4, 4, 4)
    assert net.layers[-3:] == (AvgPool((4, 4)), Flatten(), Dense(4))


def test_vww_space_definition() -> None:
    sp = get_space("vww")
    assert width_steps(32) == (3, 6, 10, 13, 16, 19, 22, 26, 29, 32)
    assert width_steps(1280)[0] == 128 and width_steps(1280)[-1] == 1280
    assert sp.node_map["b1.expand"].choices[-1] == 96  # 6 x 16, MobileNetV2 block 1
    assert sp.node_map["b16.expand"].choices[-1] == 960  # 6 x 160
    assert len(sp.blocks) == 17
    widest = {n.name: max(n.choices) for n in sp.nodes}
    net = Architecture("vww", widest).network()
    # Full-width MobileNetV2 (Table 2) on 50x50x1: 10 residual blocks, 2x2 before the pool.
    assert sum(isinstance(x, Residual) for x in net.layers) == 10
    assert net.shapes()[-4] == (2, 2, 1280)
    assert Architecture("vww", widest, (128, 128, 1)).network().shapes()[-4] == (4, 4, 1280)
    with pytest.raises(InvalidArchitectureError, match="H, W >= 32"):
        Architecture("vww", widest, (16, 16, 1))
    with pytest.raises(InvalidArchitectureError, match="fixed input shape"):
        sample("kws", 1, input_shape=(64, 10, 1))


def test_network_description_round_trips() -> None:
    for preset in PRESETS.values():
        net = preset.network()
        again = Network.from_dict(json.loads(json.dumps(net.to_dict())))
        assert again == net and again.digest() == net.digest()
        assert again.macs() == net.macs()


def test_reference_network_sizes() -> None:
    """MACs of the reference networks against their published op counts (1 MAC = 2 ops)."""
    macs = {name: p.network().macs() for name, p in PRESETS.items()}
    # Hello Edge Table 5 (DS-CNN S/M/L: 5.4 / 19.8 / 56.9 M ops, which count BN/ReLU too).
    assert 2 * macs["ds-cnn-s"] == pytest.approx(5.4e6, rel=0.03)
    assert 2 * macs["ds-cnn-m"] == pytest.approx(19.8e6, rel=0.03)
    assert 2 * macs["ds-cnn-l"] == pytest.approx(56.9e6, rel=0.03)
    assert macs["mlperf-kws"] == macs["ds-cnn-s"]  # MLPerf Tiny KWS is DS-CNN S
    # MLPerf Tiny v0.5 reference models: VWW 7.49 M, IC 12.5 M, AD 0.264 M MACs.
    assert macs["mlperf-vww"] == pytest.approx(7.49e6, rel=0.01)
    assert macs["mlperf-ic"] == pytest.approx(12.5e6, rel=0.01)
    assert macs["mlperf-ad"] == 264_192


def test_preset_names() -> None:
    assert sorted(PRESETS) == sorted(
        [f"micronet-kws-{s}" for s in "sml"] + [f"micronet-ad-{s}" for s in "sml"]
        + [f"ds-cnn-{s}" for s in "sml"]
        + ["mlperf-kws", "mlperf-vww", "mlperf-ic", "mlperf-ad"])
    for name, preset in PRESETS.items():
        arch = preset.architecture()
        assert (arch is not None) == name.startswith("micronet-")
        assert preset.source
