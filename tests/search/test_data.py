"""search.data: the synthetic sets, the published layouts (on tiny folders written here),
the front ends against TensorFlow's own ops, and the errors a wrong spec or folder gives."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from search.data import (
    ADTestClip,
    Dataset,
    DatasetError,
    anomaly_scores,
    auc_per_machine_id,
    load_dataset,
    synth,
)
from search.data import loader as loader_module
from search.data.audio import fit_length, read_wav
from search.data.speech_commands import KWS_CLASSES
from search.errors import SearchError

HAVE_SYNTHESIZERS = shutil.which("espeak-ng") is not None and shutil.which("flite") is not None
needs_synthesizers = pytest.mark.skipif(
    not HAVE_SYNTHESIZERS,
    reason="synth:kws needs espeak-ng and flite: apt-get install espeak-ng flite, or make setup")
SR = 16000


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth-cache")


@pytest.fixture(scope="module")
def tf() -> object:
    return pytest.importorskip("tensorflow", reason="the front ends need tensorflow")


def write_wav(path: Path, audio: np.ndarray, rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16))


def tone(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))


def check_shapes(ds: Dataset, shape: tuple[int, ...], classes: int) -> None:
    assert ds.input_shape == shape
    assert len(ds.classes) == classes
    splits = [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test),
              *ds.extra_tests.values()]
    for x, y in splits:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), *shape)
        assert len(y) > 0 and y.min() >= 0 and y.max() < classes
        assert np.isfinite(x).all()
    assert ds.describe().count("\n") == 0


# --------------------------------------------------------------------------------------------
# Cheap: no TensorFlow
# --------------------------------------------------------------------------------------------


def test_import_does_not_load_tensorflow() -> None:
    code = ("import sys, search.data; "
            "assert 'tensorflow' not in sys.modules and 'scipy.signal' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@needs_synthesizers
def test_synth_kws_splits_by_synthesizer_and_voice(cache: Path) -> None:
    splits = synth.synth_kws_audio(seed=0, per_class=3, cache_dir=cache)
    speech = {name: s.engines[s.words != ""] for name, s in splits.items()}
    assert set(speech["test"]) == {"flite"}  # the headline test: flite only
    for name in ("train", "val", "heldout"):
        assert set(speech[name]) == {"espeak-ng"}
    for s in splits.values():
        assert set(s.engines[s.labels == 0]) == {"noise"} and set(s.words[s.labels == 0]) == {""}
        assert s.audio.dtype == np.float32 and s.audio.shape == (len(s.labels), SR)
        assert np.abs(s.audio).max() <= 1.0
    variants = {name: {v.split("+")[1] for v in splits[name].voices if v}
                for name in ("train", "val", "heldout")}
    assert not variants["heldout"] & (variants["train"] | variants["val"])
    assert len(splits["train"].labels) == 3 * len(KWS_CLASSES)
    assert len(splits["test"].labels) == synth.held_out_size(3) * len(KWS_CLASSES)
    unknown_words = set(splits["train"].words[splits["train"].labels == 1])
    assert unknown_words and unknown_words <= set(synth.UNKNOWN_WORDS)


@needs_synthesizers
def test_synth_kws_is_deterministic_and_cached(tmp_path: Path) -> None:
    a = synth.synth_kws_audio(seed=5, per_class=2, cache_dir=tmp_path / "a")
    lines: list[str] = []
    b = synth.synth_kws_audio(seed=5, per_class=2, cache_dir=tmp_path / "b")
    cached = synth.synth_kws_audio(seed=5, per_class=2, cache_dir=tmp_path / "a",
                                   progress=lines.append)
    other = synth.synth_kws_audio(seed=6, per_class=2, cache_dir=tmp_path / "a")
    for name in synth.KWS_SPLITS:
        np.testing.assert_array_equal(a[name].audio, b[name].audio)  # made twice, same
        np.testing.assert_array_equal(a[name].audio, cached[name].audio)
        assert list(a[name].voices) == list(b[name].voices)
    assert any("cached in" in line for line in lines) and not any("making" in x for x in lines)
    assert not np.array_equal(a["train"].audio, other["train"].audio)
    assert len(list((tmp_path / "a").glob("kws-*.npz"))) == 2


def test_synth_vww_shapes_and_determinism(tmp_path: Path) -> None:
    ds = load_dataset("synth:vww", "vww", per_class=4, cache_dir=tmp_path)
    check_shapes(ds, (50, 50, 1), 2)
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert any("not an accuracy benchmark" in note for note in ds.notes)
    again = load_dataset("synth:vww", "vww", per_class=4, cache_dir=tmp_path / "other")
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    wide = load_dataset("synth:vww", "vww", input_shape=(40, 64, 1), per_class=2,
                        cache_dir=tmp_path)
    check_shapes(wide, (40, 64, 1), 2)


def test_auc_per_machine_id() -> None:
    ids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    anomalous = np.array([0, 0, 1, 1, 0, 1, 0, 1], bool)
    assert auc_per_machine_id(anomalous.astype(float), ids, anomalous) == {0: 1.0, 1: 1.0}
    scores = np.array([0.1, 0.9, 0.5, 0.6, 0.2, 0.1, 0.3, 0.4])
    assert auc_per_machine_id(scores, ids, anomalous) == {0: 0.5, 1: 0.5}
    with pytest.raises(DatasetError, match="machine id 2 has only normal"):
        auc_per_machine_id([0.1, 0.2], [2, 2], [False, False])
    with pytest.raises(DatasetError, match="differ in length"):
        auc_per_machine_id([0.1], [0, 0], [False, True])


def test_anomaly_scores_are_minus_log_of_the_own_id() -> None:
    clips = [ADTestClip(np.zeros((2, 32, 32, 1), np.float32), 1, False),
             ADTestClip(np.zeros((3, 32, 32, 1), np.float32), 0, True)]

    def predict(patches: np.ndarray) -> np.ndarray:
        return np.tile([0.25, 0.75], (len(patches), 1))

    np.testing.assert_allclose(anomaly_scores(clips, predict), [-np.log(0.75), -np.log(0.25)])


# --------------------------------------------------------------------------------------------
# Errors: one DatasetError, with what was wrong and what to do
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def vww_dir(tmp_path: Path) -> Path:
    """A tiny Visual Wake Words folder (PNG and JPEG written by TensorFlow in the slow test;
    here raw bytes: the layout check does not decode)."""
    root = tmp_path / "vww"
    for folder in ("person", "non_person"):
        (root / folder).mkdir(parents=True)
        (root / folder / "a.png").write_bytes(b"not decoded by the layout check")
    return root


@pytest.mark.parametrize("spec, space, kwargs, words", [
    ("synth:ad", "kws", {}, ["synth:ad is the ad space's set", "synth:kws"]),
    ("synth:speech", "kws", {}, ["unknown synthetic set synth:speech", "synth:vww"]),
    ("synth:kws", "imagenet", {}, ["'imagenet' is not a search space", "kws, ad, vww"]),
    ("synth:kws?frontend=mel", "kws", {}, ["unknown KWS front end 'mel'", "ml-kws, tf.signal"]),
    ("synth:kws?frontend=tf.signal", "kws", {"frontend": "ml-kws"}, ["give one"]),
    ("synth:ad?frontend=tf.signal", "ad", {}, ["'frontend' does not apply", "machine=TYPE"]),
    ("synth:ad", "ad", {"frontend": "tf.signal"}, ["kws space only"]),
    ("synth:vww?machine=fan", "vww", {}, ["does not apply", "no options"]),
    ("synth:kws?frontend", "kws", {}, ["not key=value"]),
    ("", "kws", {}, ["empty dataset spec"]),
    ("synth:kws", "kws", {"input_shape": (32, 32, 1)}, ["input_shape", "fixed input shape"]),
    ("synth:vww", "vww", {"input_shape": (16, 16, 1)}, ["input_shape", "H, W >= 32"]),
    ("synth:kws", "kws", {"per_class": 0}, ["per_class must be a positive"]),
    ("synth:kws", "kws", {"per_class": 2.5}, ["per_class must be a positive"]),
    ("/nonexistent/speech_commands", "kws", {}, ["no directory", "Google Speech Commands",
                                                  "validation_list.txt"]),
])
def test_bad_specs_raise_dataset_error(spec: str, space: str, kwargs: dict, words: list[str],
                                       tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(spec, space, cache_dir=tmp_path, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, SearchError)


def test_wrong_layout_says_what_was_expected_and_found(vww_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset(str(vww_dir), "kws")
    message = str(info.value)
    for word in ("Google Speech Commands v0.02 layout", "validation_list.txt",
                 "_background_noise_", "found non_person/, person/",
                 "looks like Visual Wake Words"):
        assert word in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"DCASE 2020 Task 2 layout.*it is empty"):
        load_dataset(str(empty), "ad")
    with pytest.raises(DatasetError, match=r"Visual Wake Words layout.*person/"):
        load_dataset(str(empty), "vww")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        load_dataset(str(tmp_path / "file.txt"), "vww")


def test_space_without_a_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(loader_module.PUBLISHED, "vww")
    with pytest.raises(DatasetError, match="'vww' has no dataset; the spaces with a dataset"):
        load_dataset("synth:vww", "vww")


def test_missing_synthesizers_say_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(DatasetError) as info:
        load_dataset("synth:kws", "kws", cache_dir=tmp_path)
    assert "apt-get install espeak-ng flite" in str(info.value)
    assert "make setup" in str(info.value)


def test_dcase_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "dcase"
    for i in range(5):
        write_wav(root / "fan" / "train" / f"normal_id_0{i}_00000000.wav", tone(100, 1.2, rng))
    write_wav(root / "fan" / "test" / "normal_id_00_00000000.wav", tone(100, 1.2, rng))
    with pytest.raises(DatasetError, match="fan has 5 machine ids.*classifies 4"):
        load_dataset(str(root), "ad")
    with pytest.raises(DatasetError, match="no machine type 'valve'.*it has fan"):
        load_dataset(f"{root}?machine=valve", "ad")
    write_wav(root / "pump" / "train" / "normal_00.wav", tone(100, 1.2, rng))
    with pytest.raises(DatasetError, match="normal_00.wav: not a DCASE 2020 Task 2 file name"):
        load_dataset(f"{root}?machine=pump", "ad")


def test_read_wav_wraps_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVE")
    with pytest.raises(DatasetError, match="cannot read .*bad.wav as a WAV file"):
        read_wav(bad)
    write_wav(tmp_path / "8k.wav", np.zeros(8000), rate=8000)
    assert read_wav(tmp_path / "8k.wav").shape == (SR,)  # resampled to 16 kHz


# --------------------------------------------------------------------------------------------
# TensorFlow: front ends and whole loads
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mfcc_ml_kws_matches_tf_raw_ops(tf: object) -> None:
    import tensorflow as tf_

    from search.data.frontends import mfcc_ml_kws, mfcc_tf_signal

    rng = np.random.default_rng(0)
    clips = np.stack([tone(f, 1.0, rng) for f in (300, 700, 1500)]).astype(np.float32)
    spectrogram = tf_.raw_ops.AudioSpectrogram(input=clips[1][:, None], window_size=640,
                                               stride=320, magnitude_squared=True)
    reference = tf_.raw_ops.Mfcc(spectrogram=spectrogram, sample_rate=16000,
                                 upper_frequency_limit=4000, lower_frequency_limit=20,
                                 filterbank_channel_count=40, dct_coefficient_count=10)
    one = mfcc_ml_kws(clips[1])
    assert one.shape == (49, 10) and one.dtype == np.float32
    np.testing.assert_allclose(one, reference.numpy()[0], rtol=1e-6, atol=1e-5)
    batch = mfcc_ml_kws(clips)  # the batched call gives each clip's own MFCCs
    assert batch.shape == (3, 49, 10)
    np.testing.assert_allclose(batch[1], one, rtol=1e-6, atol=1e-5)
    other = mfcc_tf_signal(clips)
    assert other.shape == (3, 49, 10) and np.isfinite(other).all()
    with pytest.raises(DatasetError, match="1 s clips of 16000 samples"):
        mfcc_ml_kws(np.zeros(8000, np.float32))


@pytest.mark.slow
@needs_synthesizers
def test_synth_kws_dataset(cache: Path, tf: object) -> None:
    ds = load_dataset("synth:kws", "kws", per_class=3, cache_dir=cache)
    check_shapes(ds, (49, 10, 1), 12)
    assert ds.classes == KWS_CLASSES
    assert ds.test_name == "held-out synthesizer (flite)"
    assert set(ds.extra_tests) == {"held-out voices"}
    assert any("not an accuracy benchmark" in note for note in ds.notes)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(y.tolist()) == set(range(12))
    signal = load_dataset("synth:kws?frontend=tf.signal", "kws", per_class=3, cache_dir=cache)
    assert signal.x_train.shape == ds.x_train.shape and signal.frontend == "mfcc tf.signal"
    np.testing.assert_array_equal(signal.y_train, ds.y_train)


@pytest.mark.slow
def test_synth_ad_dataset(tmp_path: Path, tf: object) -> None:
    ds = load_dataset("synth:ad", "ad", per_class=6, cache_dir=tmp_path)
    check_shapes(ds, (32, 32, 1), 4)
    assert ds.ad_test is not None
    anomalous = [c.is_anomaly for c in ds.ad_test]
    assert any(anomalous) and not all(anomalous)
    assert sum(len(c.patches) for c in ds.ad_test if not c.is_anomaly) == len(ds.y_test)
    again = load_dataset("synth:ad", "ad", per_class=6, cache_dir=tmp_path / "cold")
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    # An oracle that knows the anomalies scores AUC 1 for every machine.
    auc = auc_per_machine_id([float(c.is_anomaly) for c in ds.ad_test],
                             [c.machine_id for c in ds.ad_test], anomalous)
    assert auc == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}


def make_speech_commands(root: Path) -> dict[str, list[str]]:
    """Ten keywords x 4 clips (2 train, 1 val, 1 test), 3 other words x 3 clips, 2 noise
    files; returns the split lists."""
    rng = np.random.default_rng(1)
    lists: dict[str, list[str]] = {"val": [], "test": []}
    words = [*KWS_CLASSES[2:], "bed", "cat", "dog"]
    for w, word in enumerate(words):
        n = 4 if word in KWS_CLASSES else 3
        for i in range(n):
            rel = f"{word}/speaker{i}_nohash_0.wav"
            seconds = 0.6 if i == 0 else 1.0  # short clips are zero-padded to 1 s
            write_wav(root / rel, tone(200 + 50 * w + 7 * i, seconds, rng))
            if i == 2:
                lists["val"].append(rel)
            elif i == 3 or (word not in KWS_CLASSES and i == 1):
                lists["test"].append(rel)
    for i in range(2):
        write_wav(root / "_background_noise_" / f"noise{i}.wav", rng.standard_normal(2 * SR) * 0.3)
    (root / "validation_list.txt").write_text("\n".join(lists["val"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")
    return lists


@pytest.mark.slow
def test_speech_commands_layout(tmp_path: Path, tf: object) -> None:
    from search.data.frontends import mfcc_ml_kws

    root = tmp_path / "speech_commands"
    lists = make_speech_commands(root)
    ds = load_dataset(str(root), "kws")
    check_shapes(ds, (49, 10, 1), 12)
    counts = {name: np.bincount(y, minlength=12) for name, y in
              (("train", ds.y_train), ("val", ds.y_val), ("test", ds.y_test))}
    # 2 train clips per keyword; unknown and silence 10% of the 20 keyword clips each.
    assert counts["train"].tolist() == [2, 2] + [2] * 10
    assert counts["val"].tolist() == [1, 1] + [1] * 10
    assert counts["test"].tolist() == [1, 1] + [1] * 10
    # Validation keywords are neither shifted nor mixed: the file's own MFCCs.
    own = mfcc_ml_kws(np.stack([fit_length(read_wav(root / rel), SR) for rel in lists["val"]
                                if rel.split("/")[0] in KWS_CLASSES]))
    for x, y in zip(ds.x_val, ds.y_val, strict=True):
        if y >= 2:
            assert min(np.abs(x[..., 0] - o).max() for o in own) < 1e-4
    assert ds.test_name == "Speech Commands test list"
    tiny = load_dataset(f"{root}?frontend=tf.signal", "kws", per_class=1, seed=3)
    assert np.bincount(tiny.y_train, minlength=12).tolist() == [1] * 12
    assert tiny.frontend == "mfcc tf.signal"


def make_dcase(root: Path) -> None:
    rng = np.random.default_rng(2)
    for machine, ids in (("fan", (0, 2)), ("pump", (0,))):
        for i in ids:
            for n in range(3):
                write_wav(root / machine / "train" / f"normal_id_{i:02d}_{n:08d}.wav",
                          tone(100 + 40 * i, 2.2, rng))
            write_wav(root / machine / "test" / f"normal_id_{i:02d}_00000000.wav",
                      tone(100 + 40 * i, 2.2, rng))
            write_wav(root / machine / "test" / f"anomaly_id_{i:02d}_00000000.wav",
                      tone(900, 2.2, rng))


@pytest.mark.slow
def test_dcase_layout(tmp_path: Path, tf: object) -> None:
    root = tmp_path / "dev_data"
    make_dcase(root)
    ds = load_dataset(str(root), "ad")  # fan: first in alphabetical order
    check_shapes(ds, (32, 32, 1), 2)
    assert ds.classes == ["id_00", "id_02"] and ds.source.endswith("fan")
    assert any("2 of the head's 4 outputs stay unused" in note for note in ds.notes)
    # 2.2 s -> 67 frames -> 2 patches a file; 1 file per id held out for validation.
    assert len(ds.y_train) == 2 * 2 * 2 and len(ds.y_val) == 2 * 2
    assert ds.ad_test is not None and len(ds.ad_test) == 4
    assert sorted((c.machine_id, c.is_anomaly) for c in ds.ad_test) == [
        (0, False), (0, True), (1, False), (1, True)]
    assert len(ds.y_test) == 2 * 2  # the normal test files' patches
    pump = load_dataset(f"{root}?machine=pump", "ad")
    assert pump.classes == ["id_00"] and pump.source.endswith("pump")
    one = load_dataset(str(root / "pump"), "ad", per_class=1)  # a machine-type folder itself
    assert one.classes == ["id_00"] and len(one.y_train) == 2


@pytest.mark.slow
def test_vww_layout(tmp_path: Path, tf: object) -> None:
    import tensorflow as tf_

    root = tmp_path / "vww"
    rng = np.random.default_rng(3)
    for folder, value, encode, suffix in (("person", 255, tf_.io.encode_png, "png"),
                                          ("not_person", 0, tf_.io.encode_jpeg, "jpg")):
        (root / folder).mkdir(parents=True)
        for i in range(6):
            channels = 3 if i % 2 else 1
            h, w = 60 + 10 * i, 80
            pixels = np.full((h, w, channels), value, np.uint8)
            pixels[: h // 4] = rng.integers(0, 256, (h // 4, w, channels))
            (root / folder / f"{i}.{suffix}").write_bytes(encode(pixels).numpy())
    (root / "person" / "notes.txt").write_text("ignored")
    ds = load_dataset(str(root), "vww")
    check_shapes(ds, (50, 50, 1), 2)
    # 6 images a class: 4 train, 1 validation, 1 test.
    assert np.bincount(ds.y_train).tolist() == [4, 4]
    assert np.bincount(ds.y_val).tolist() == [1, 1] and np.bincount(ds.y_test).tolist() == [1, 1]
    bottom = ds.x_train[:, 40:, :, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(bottom[ds.y_train == 1], 1.0, atol=0.02)  # white persons
    np.testing.assert_allclose(bottom[ds.y_train == 0], 0.0, atol=0.02)
    small = load_dataset(str(root), "vww", input_shape=(32, 40, 1), per_class=2)
    check_shapes(small, (32, 40, 1), 2)
    assert np.bincount(small.y_train).tolist() == [2, 2]
    (root / "person" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match="cannot decode .*broken.png as an image"):
        load_dataset(str(root), "vww")
