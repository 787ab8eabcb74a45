"""Synthetic sets made offline: ``synth:kws``, ``synth:ad``, ``synth:vww``.

They exist so that the search's whole pipeline (data, front end, training, int8 conversion,
profiling) runs on a machine with no dataset and no network. They test the pipeline; they
are not an accuracy benchmark, and a number measured on them says nothing about Speech
Commands, DCASE or Visual Wake Words.

* ``synth:kws``: the 10 keywords and 25 other words of Speech Commands v0.02 spoken by
  Debian's ``espeak-ng`` (8 English accents x 24 voice variants, 120-220 words per minute,
  pitch 20-80) and ``flite`` (voices kal, kal16, awb, rms, slt, stretched and re-pitched),
  placed at a random offset in a 1 s clip at 16 kHz over generated noise (coloured, babble-
  like or mains hum) at 5-30 dB SNR; silence is noise alone. Train and validation use
  espeak-ng voices of 18 variants; ``extra_tests["held-out voices"]`` the 6 other variants,
  never heard in training; the test split (``x_test``) is flite alone, a synthesizer the
  model has never heard.
* ``synth:ad``: 4 machines, each a harmonic series with its own fundamental and harmonic
  weights, slow AM and FM, over noise; 4 s clips. Training and validation are normal; the
  test clips are half anomalous (clicks, a harmonic moved off the series, an extra tone).
* ``synth:vww``: plumbing only. "person" is a stick figure on a textured background, "no
  person" the background with other shapes.

Each set is a pure function of its seed and size (and of the synthesizers' versions). The
waveforms and images are cached as ``.npz`` in ``$MCUPROF_CACHE_DIR/synth`` (else
``~/.cache/mcuprof/synth``) under a hash of all of that, so a second load only runs the
front end.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from search.data.audio import read_wav
from search.data.base import SAMPLE_RATE, Dataset, DatasetError, Progress, labels, notify
from search.data.dcase import ClipSource, build_ad_dataset
from search.data.frontends import (
    CLIP_SAMPLES,
    DCT_COEFFICIENTS,
    KWS_FRAMES,
    ad_patches_per_clip,
)
from search.data.speech_commands import KEYWORDS, KWS_CLASSES
from search.data.vww import VWW_CLASSES

#: bump when a generator changes what it makes: it is part of every cache key
SYNTH_VERSION = 1
#: training examples per class when the caller gives no ``per_class``
DEFAULT_PER_CLASS = 60
NOT_A_BENCHMARK = "synthetic data: it tests the pipeline, it is not an accuracy benchmark"


def held_out_size(per_class: int) -> int:
    """Examples per class of each validation and test split."""
    return max(2, per_class // 5)


def default_cache_dir() -> Path:
    base = os.environ.get("MCUPROF_CACHE_DIR", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "mcuprof") / "synth"


def _cached(kind: str, key: dict[str, object], build: Callable[[], dict[str, np.ndarray]],
            cache_dir: Path | None, progress: Progress | None) -> dict[str, np.ndarray]:
    """The arrays ``build`` makes, from ``<cache_dir>/<kind>-<hash of key>.npz`` when there."""
    text = json.dumps({"kind": kind, "version": SYNTH_VERSION, **key}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = (cache_dir or default_cache_dir()) / f"{kind}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            notify(progress, f"synth:{kind}: cached in {path}")
            return arrays
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            notify(progress, f"synth:{kind}: {path} is unreadable; making the set again")
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # the stub types **kwds as allow_pickle
        os.replace(tmp, path)
        notify(progress, f"synth:{kind}: cached in {path}")
    except OSError as e:
        notify(progress, f"synth:{kind}: not cached ({path}: {e.strerror}); pass cache_dir= "
                         f"or set MCUPROF_CACHE_DIR to a writable folder")
    return arrays


def _workers() -> int:
    # The synthesizers run as child processes, so threads (not a process pool, which would
    # fork a process that may hold TensorFlow) keep one synthesizer busy per core.
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(audio, -1.0, 32767 / 32768) * 32768).astype(np.int16)


# --------------------------------------------------------------------------------------------
# Noise, made with numpy (nothing downloaded)
# --------------------------------------------------------------------------------------------


def _smooth(rng: np.random.Generator, n: int, hz: float) -> np.ndarray:
    """A random contour in [-1, 1] that changes about ``hz`` times a second."""
    knots = max(2, int(n / SAMPLE_RATE * hz) + 2)
    return np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.uniform(-1, 1, knots))


def _coloured(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f^alpha noise, alpha in [0, 2]: white through pink to brown."""
    alpha = rng.uniform(0.0, 2.0)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    return np.fft.irfft(spectrum / freqs ** (alpha / 2), n)


def _harmonics(phase: np.ndarray, k: np.ndarray, weights: np.ndarray,
               offsets: np.ndarray) -> np.ndarray:
    """``sum_k weights_k * sin(k * phase + offsets_k)`` for integer ``k``, read from a
    one-period wavetable (linear interpolation): one lookup a sample, not one sine per
    harmonic."""
    size = 4096
    theta = 2 * np.pi * np.arange(size + 1) / size
    table = (weights[:, None] * np.sin(k[:, None] * theta[None] + offsets[:, None])).sum(0)
    pos = np.mod(phase / (2 * np.pi), 1.0) * size
    i = pos.astype(np.int64)
    frac = pos - i
    return table[i] * (1 - frac) + table[i + 1] * frac


def _voices(rng: np.random.Generator, n: int, talkers: int, syllable_hz: float) -> np.ndarray:
    """``talkers`` voiced sources: harmonic series under two formant peaks, a wandering
    fundamental, syllable-rate gating (a crude babble without recorded speech)."""
    out = np.zeros(n)
    for _ in range(talkers):
        f0 = rng.uniform(90, 250) * (1 + 0.08 * _smooth(rng, n, 3.0))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        formants = (rng.uniform(300, 900), rng.uniform(900, 2500))
        harmonics = np.arange(1, int(3500 / f0.mean()) + 1)
        centre = harmonics * f0.mean()
        weight = sum(np.exp(-0.5 * ((centre - f) / 150.0) ** 2) for f in formants) + 0.05
        voiced = _harmonics(phase, harmonics, weight, np.zeros(len(harmonics)))
        gate = np.clip(_smooth(rng, n, syllable_hz) + 0.3, 0, None)
        out += voiced * gate
    return out


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) over pink-ish noise: an appliance."""
    mains = float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / SAMPLE_RATE
    k = np.arange(1, 11)
    tone = ((rng.uniform(0.2, 1.0, 10) / k)[:, None]
            * np.sin(2 * np.pi * mains * k[:, None] * t + rng.uniform(0, 2 * np.pi, 10)[:, None])
            ).sum(0)
    noise = _coloured(rng, n)
    return tone / tone.std() + 0.5 * noise / noise.std()


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Background noise of unit RMS: coloured, babble-like or hum."""
    kind = rng.choice(3, p=[0.5, 0.35, 0.15])
    if kind == 0:
        x = _coloured(rng, n)
    elif kind == 1:
        x = _voices(rng, n, int(rng.integers(3, 8)), syllable_hz=4.0)
    else:
        x = _hum(rng, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


# --------------------------------------------------------------------------------------------
# synth:kws
# --------------------------------------------------------------------------------------------

#: Speech Commands v0.02's 25 words that are not keywords (Warden 2018, arXiv 1804.03209)
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree",
                 "wow", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine", "backward", "forward", "follow", "learn", "visual")
#: espeak-ng's own English voices (``espeak-ng --voices=en``; the mbrola ones need more
#: packages) and human-sounding variants of ``espeak-ng-data/voices/!v``
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "adam", "aunty", "benjamin", "david", "edward",
                   "grandma", "linda", "steph", "travis")
HELD_OUT_VARIANTS = 6
#: flite's built-in voices and the mean F0 (Hz) range drawn for each
FLITE_VOICES = {"kal": (85.0, 130.0), "kal16": (85.0, 130.0), "awb": (90.0, 140.0),
                "rms": (80.0, 125.0), "slt": (150.0, 220.0)}
ESPEAK_WPM = (120, 220)
ESPEAK_PITCH = (20, 80)
FLITE_STRETCH = (0.8, 1.3)
SNR_DB = (5.0, 30.0)
SILENCE_DBFS = (-60.0, -20.0)
HELD_OUT_VOICES = "held-out voices"
HELD_OUT_SYNTHESIZER = "held-out synthesizer (flite)"
KWS_SPLITS = ("train", "val", "test", "heldout")


@dataclass(frozen=True)
class Utterance:
    """One clip to make: who says what (``word`` None: silence), how, and its seed."""

    engine: str  # "espeak-ng", "flite", or "noise" for silence
    voice: str
    word: str | None
    label: int
    rate: float  # espeak-ng words per minute, flite duration stretch
    pitch: float  # espeak-ng pitch 0-99, flite mean F0 in Hz
    seed: int


class KwsSplit(NamedTuple):
    """The waveforms of one split and who made each."""

    audio: np.ndarray  # float32 (N, 16000)
    labels: np.ndarray  # int64
    engines: np.ndarray  # str: espeak-ng, flite, noise
    voices: np.ndarray  # str
    words: np.ndarray  # str ("" for silence)


def require_synthesizers() -> dict[str, str]:
    """The versions of espeak-ng and flite; DatasetError when either is missing."""
    missing = [t for t in ("espeak-ng", "flite") if shutil.which(t) is None]
    if missing:
        raise DatasetError(f"synth:kws speaks its words with espeak-ng and flite; not found: "
                           f"{', '.join(missing)}. Install them with `apt-get install espeak-ng "
                           f"flite` (as root) or `make setup`")
    out = {}
    for tool in ("espeak-ng", "flite"):
        run = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30,
                             check=False)
        out[tool] = (run.stdout + run.stderr).strip()
    voices = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30,
                            check=False).stdout.split()
    absent = [v for v in FLITE_VOICES if v not in voices]
    if absent:
        raise DatasetError(f"this flite lacks the voices {', '.join(absent)} (`flite -lv`): "
                           f"install Debian's flite package")
    return out


def plan_kws(seed: int, per_class: int) -> dict[str, list[Utterance]]:
    """What every clip of ``synth:kws`` will be: a pure function of the seed and size."""
    rng = np.random.default_rng([seed, 1])
    variants = [str(v) for v in rng.permutation(ESPEAK_VARIANTS)]
    held, seen = variants[:HELD_OUT_VARIANTS], variants[HELD_OUT_VARIANTS:]
    seen_voices = [f"{a}+{v}" for a in ESPEAK_ACCENTS for v in sorted(seen)]
    held_voices = [f"{a}+{v}" for a in ESPEAK_ACCENTS for v in sorted(held)]
    n = held_out_size(per_class)
    layout = {"train": ("espeak-ng", seen_voices, per_class),
              "val": ("espeak-ng", seen_voices, n),
              "heldout": ("espeak-ng", held_voices, n),
              "test": ("flite", list(FLITE_VOICES), n)}
    plan: dict[str, list[Utterance]] = {}
    for split, (engine, voices, count) in layout.items():
        items = []
        for label, name in enumerate(KWS_CLASSES):
            for _ in range(count):
                seed_i = int(rng.integers(2**62))
                if label == 0:
                    items.append(Utterance("noise", "", None, 0, 0.0, 0.0, seed_i))
                    continue
                word = str(rng.choice(UNKNOWN_WORDS)) if label == 1 else name
                voice = str(rng.choice(voices))
                if engine == "espeak-ng":
                    rate = float(rng.integers(ESPEAK_WPM[0], ESPEAK_WPM[1] + 1))
                    pitch = float(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1))
                else:
                    rate = round(float(rng.uniform(*FLITE_STRETCH)), 3)
                    pitch = round(float(rng.uniform(*FLITE_VOICES[voice])), 1)
                items.append(Utterance(engine, voice, word, label, rate, pitch, seed_i))
        plan[split] = [items[i] for i in rng.permutation(len(items))]
    return plan


def _speak(u: Utterance, workdir: Path) -> np.ndarray:
    """The word of ``u`` as its synthesizer says it, float32 at 16 kHz."""
    assert u.word is not None
    fd, name = tempfile.mkstemp(suffix=".wav", dir=workdir)
    os.close(fd)
    if u.engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", u.voice, "-s", str(int(u.rate)), "-p", str(int(u.pitch)),
               "-w", name, u.word]
    else:
        cmd = ["flite", "-voice", u.voice, "--setf", f"duration_stretch={u.rate}",
               "--setf", f"int_f0_target_mean={u.pitch}", "-t", u.word, "-o", name]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if run.returncode != 0:
            raise DatasetError(f"{' '.join(cmd)} failed ({run.returncode}): "
                               f"{run.stderr.strip()[:200]}")
        return read_wav(Path(name))
    finally:
        os.unlink(name)


def _trim(speech: np.ndarray) -> np.ndarray:
    """The word without the synthesizer's leading and trailing silence (20 ms kept)."""
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max())
    if len(loud) == 0:
        return speech[:0]
    margin = SAMPLE_RATE // 50
    return speech[max(0, loud[0] - margin):loud[-1] + margin]


def render_utterance(u: Utterance, workdir: Path) -> np.ndarray:
    """The 1 s clip of ``u``: the word at a random offset over noise at 5-30 dB SNR."""
    rng = np.random.default_rng(u.seed)
    bg = noise(rng, CLIP_SAMPLES)
    if u.word is None:
        return (bg * 10 ** (rng.uniform(*SILENCE_DBFS) / 20)).astype(np.float32)
    word = _trim(_speak(u, workdir))[:CLIP_SAMPLES]
    if len(word) == 0:
        raise DatasetError(f"{u.engine} {u.voice} said nothing for {u.word!r}")
    word = word / np.abs(word).max() * rng.uniform(0.25, 0.9)
    offset = int(rng.integers(CLIP_SAMPLES - len(word) + 1))
    clip = np.zeros(CLIP_SAMPLES)
    clip[offset:offset + len(word)] = word
    speech_rms = np.sqrt(np.mean(word**2))
    clip += bg * speech_rms / 10 ** (rng.uniform(*SNR_DB) / 20)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def synth_kws_audio(*, seed: int = 0, per_class: int = DEFAULT_PER_CLASS,
                    cache_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, KwsSplit]:
    """The waveforms of ``synth:kws`` by split (``train``, ``val``, ``test``: flite,
    ``heldout``: held-out espeak-ng voices), made or read from the cache."""
    versions = require_synthesizers()
    plan = plan_kws(seed, per_class)

    def build() -> dict[str, np.ndarray]:
        everything = [u for split in KWS_SPLITS for u in plan[split]]
        notify(progress, f"synth:kws: making {len(everything)} clips with espeak-ng and flite "
                         f"({_workers()} at a time)")
        audio = np.empty((len(everything), CLIP_SAMPLES), np.int16)
        with tempfile.TemporaryDirectory(prefix="mcuprof-synth-") as tmp, \
                ThreadPoolExecutor(max_workers=_workers()) as pool:
            clips = pool.map(lambda u: render_utterance(u, Path(tmp)), everything)
            for i, clip in enumerate(clips):
                audio[i] = _to_int16(clip)
                if (i + 1) % 100 == 0 or i + 1 == len(everything):
                    notify(progress, f"synth:kws: {i + 1}/{len(everything)} clips")
        out: dict[str, np.ndarray] = {}
        start = 0
        for split in KWS_SPLITS:
            items = plan[split]
            out[f"{split}_audio"] = audio[start:start + len(items)]
            start += len(items)
        return out

    key = {"seed": seed, "per_class": per_class, "tools": versions,
           "plan": hashlib.sha256(json.dumps([asdict(u) for s in KWS_SPLITS for u in plan[s]])
                                  .encode()).hexdigest()}
    arrays = _cached("kws", key, build, cache_dir, progress)
    return {split: KwsSplit(
        audio=arrays[f"{split}_audio"].astype(np.float32) / 32768.0,
        labels=labels([u.label for u in plan[split]]),
        engines=np.array([u.engine for u in plan[split]]),
        voices=np.array([u.voice for u in plan[split]]),
        words=np.array([u.word or "" for u in plan[split]]),
    ) for split in KWS_SPLITS}


def synth_kws(*, frontend: Callable[[np.ndarray], np.ndarray], frontend_name: str, seed: int,
              per_class: int | None, cache_dir: Path | None,
              progress: Progress | None) -> Dataset:
    per_class = per_class or DEFAULT_PER_CLASS
    splits = synth_kws_audio(seed=seed, per_class=per_class, cache_dir=cache_dir,
                             progress=progress)
    notify(progress, f"synth:kws: MFCCs ({frontend_name}) of "
                     f"{sum(len(s.labels) for s in splits.values())} clips")
    shape = (-1, KWS_FRAMES, DCT_COEFFICIENTS, 1)
    x = {name: frontend(s.audio).reshape(shape) for name, s in splits.items()}
    held = sorted({v.split("+")[1] for v in splits["heldout"].voices if v})
    return Dataset(
        task="kws", classes=list(KWS_CLASSES),
        x_train=x["train"], y_train=splits["train"].labels,
        x_val=x["val"], y_val=splits["val"].labels,
        x_test=x["test"], y_test=splits["test"].labels,
        extra_tests={HELD_OUT_VOICES: (x["heldout"], splits["heldout"].labels)},
        source="synth:kws", test_name=HELD_OUT_SYNTHESIZER, frontend=f"mfcc {frontend_name}",
        notes=[
            f"synthetic speech: {NOT_A_BENCHMARK}",
            f"espeak-ng and flite saying {', '.join(KEYWORDS)} and {len(UNKNOWN_WORDS)} other "
            f"words over generated noise at 5-30 dB SNR; silence is noise alone",
            f"train/val: espeak-ng, {len(ESPEAK_VARIANTS) - HELD_OUT_VARIANTS} voice variants x "
            f"{len(ESPEAK_ACCENTS)} accents; held-out voices: variants {', '.join(held)}; test: "
            f"flite voices {', '.join(FLITE_VOICES)}",
            f"{per_class} clips per class in train, {held_out_size(per_class)} in val and each "
            f"test set (seed {seed})",
        ],
    )


# --------------------------------------------------------------------------------------------
# synth:ad
# --------------------------------------------------------------------------------------------

AD_MACHINES = 4
AD_CLIP_SECONDS = 4
AD_CLIP_SAMPLES = AD_CLIP_SECONDS * SAMPLE_RATE  # 3 patches of 32 x 32
AD_HARMONICS = 12
AD_ANOMALIES = ("clicks", "shifted harmonic", "extra tone")


@dataclass(frozen=True)
class _Machine:
    f0: float
    weights: tuple[float, ...]
    am_hz: float
    am_depth: float
    noise_db: float  # noise level under the harmonics


def _machines(rng: np.random.Generator) -> list[_Machine]:
    # Fundamentals spread over 80-320 Hz so the ids differ, close enough to need the timbre.
    f0s = np.geomspace(80, 320, AD_MACHINES) * rng.uniform(0.9, 1.1, AD_MACHINES)
    out = []
    for f0 in rng.permutation(f0s):
        k = np.arange(1, AD_HARMONICS + 1)
        weights = rng.uniform(0.2, 1.0, AD_HARMONICS) * k ** -rng.uniform(0.3, 1.2)
        out.append(_Machine(float(f0), tuple(float(w) for w in weights),
                            float(rng.uniform(0.5, 4.0)), float(rng.uniform(0.05, 0.4)),
                            float(rng.uniform(-25, -10))))
    return out


def machine_clip(m: _Machine, anomaly: str | None, seed: int) -> np.ndarray:
    """4 s of machine ``m`` (small random wear: F0 and weights jitter), with ``anomaly``."""
    rng = np.random.default_rng(seed)
    n = AD_CLIP_SAMPLES
    t = np.arange(n) / SAMPLE_RATE
    f0 = m.f0 * (1 + rng.normal(0, 0.005)) * (1 + 0.003 * _smooth(rng, n, 0.5))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    k = np.arange(1, AD_HARMONICS + 1)
    weights = np.asarray(m.weights) * (1 + rng.normal(0, 0.05, AD_HARMONICS))
    offsets = rng.uniform(0, 2 * np.pi, AD_HARMONICS)
    x = _harmonics(phase, k, weights, offsets)
    if anomaly == "shifted harmonic":
        # One harmonic moves off the series (a bearing or blade fault's new line).
        j = int(rng.integers(1, 8))
        x -= weights[j] * np.sin(k[j] * phase + offsets[j])
        x += weights[j] * rng.uniform(1.5, 3.0) * np.sin((k[j] + rng.uniform(0.3, 0.7)) * phase)
    x *= 1 + m.am_depth * np.sin(2 * np.pi * m.am_hz * t + rng.uniform(0, 2 * np.pi))
    x /= np.sqrt(np.mean(x**2))
    if anomaly == "extra tone":
        x += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(500, 6000) * t)
    elif anomaly == "clicks":
        for _ in range(int(rng.integers(4, 16))):
            at = int(rng.integers(n - 400))
            burst = rng.standard_normal(400) * np.exp(-np.arange(400) / 40)
            x[at:at + 400] += rng.uniform(2.0, 5.0) * burst
    x += noise(rng, n) * 10 ** (m.noise_db / 20)
    return (x / np.abs(x).max() * rng.uniform(0.3, 0.8)).astype(np.float32)


def synth_ad(*, seed: int, per_class: int | None, cache_dir: Path | None,
             progress: Progress | None) -> Dataset:
    per_class = per_class or DEFAULT_PER_CLASS
    patches = ad_patches_per_clip(AD_CLIP_SAMPLES)
    n_train = math.ceil(per_class / patches)
    n_held = max(2, math.ceil(n_train / 5))
    rng = np.random.default_rng([seed, 2])
    machines = _machines(rng)
    plan: list[tuple[str, int, str | None, int]] = []  # split, id, anomaly, seed
    for i in range(AD_MACHINES):
        plan += [("train", i, None, int(rng.integers(2**62))) for _ in range(n_train)]
        plan += [("val", i, None, int(rng.integers(2**62))) for _ in range(n_held)]
        plan += [("test", i, None, int(rng.integers(2**62))) for _ in range(n_held)]
        plan += [("test", i, AD_ANOMALIES[j % len(AD_ANOMALIES)], int(rng.integers(2**62)))
                 for j in range(n_held)]

    def build() -> dict[str, np.ndarray]:
        notify(progress, f"synth:ad: making {len(plan)} clips of {AD_CLIP_SECONDS} s")
        return {"audio": np.stack([_to_int16(machine_clip(machines[i], anomaly, s))
                                   for _, i, anomaly, s in plan])}

    audio = _cached("ad", {"seed": seed, "per_class": per_class}, build, cache_dir,
                    progress)["audio"]

    def source(row: int) -> ClipSource:
        return lambda: audio[row].astype(np.float32) / 32768.0

    train = [(source(r), i) for r, (s, i, _, _) in enumerate(plan) if s == "train"]
    val = [(source(r), i) for r, (s, i, _, _) in enumerate(plan) if s == "val"]
    test = [(source(r), i, a is not None) for r, (s, i, a, _) in enumerate(plan) if s == "test"]
    return build_ad_dataset(
        [f"id_{i:02d}" for i in range(AD_MACHINES)], train, val, test, source="synth:ad",
        test_name="test normal clips", progress=progress,
        notes=[f"synthetic machine sounds: {NOT_A_BENCHMARK}",
               f"{AD_MACHINES} machines (harmonic series, AM, noise); {n_train} normal clips "
               f"of {AD_CLIP_SECONDS} s per id in train, {n_held} in val, {n_held} normal + "
               f"{n_held} anomalous ({', '.join(AD_ANOMALIES)}) in test (seed {seed})"])


# --------------------------------------------------------------------------------------------
# synth:vww
# --------------------------------------------------------------------------------------------


def _segments_alpha(h: int, w: int, segments: list[tuple[float, float, float, float]],
                    width: float) -> np.ndarray:
    """Coverage in [0, 1] of thick line segments (x0, y0, x1, y1), antialiased by a pixel."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    alpha = np.zeros((h, w))
    for x0, y0, x1, y1 in segments:
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
        alpha = np.maximum(alpha, np.clip(width / 2 + 0.5 - d, 0, 1))
    return alpha


def _disc_alpha(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return np.clip(r + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1)


def vww_image(h: int, w: int, person: bool, seed: int) -> np.ndarray:
    """A uint8 ``(h, w)`` scene: gradient, noise and shapes, and a stick figure if
    ``person``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = (rng.uniform(0.2, 0.8) + rng.uniform(-0.3, 0.3) * xx / w
           + rng.uniform(-0.3, 0.3) * yy / h)
    for _ in range(int(rng.integers(0, 4))):  # rectangles and ellipses, in both classes
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
        if rng.uniform() < 0.5:
            mask = (np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)
        else:
            mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        img = np.where(mask, rng.uniform(0, 1), img)
    if person:
        size = rng.uniform(0.4, 0.9) * h
        cx, feet = rng.uniform(0.25, 0.75) * w, rng.uniform(0.7, 1.0) * h
        hip, neck = feet - 0.45 * size, feet - 0.8 * size
        shoulder = neck + 0.05 * size
        head_r = 0.1 * size
        spread = rng.uniform(0.1, 0.35, 4) * size
        limbs = [(cx, neck, cx, hip),  # torso
                 (cx, hip, cx - spread[0], feet), (cx, hip, cx + spread[1], feet),  # legs
                 (cx, shoulder, cx - spread[2], shoulder + rng.uniform(-0.2, 0.3) * size),
                 (cx, shoulder, cx + spread[3], shoulder + rng.uniform(-0.2, 0.3) * size)]
        alpha = np.maximum(_segments_alpha(h, w, limbs, max(1.0, 0.06 * size)),
                           _disc_alpha(h, w, cx, neck - head_r, head_r))
        tone = float(np.clip(img.mean() + rng.choice([-1, 1]) * rng.uniform(0.25, 0.5), 0, 1))
        img = img * (1 - alpha) + tone * alpha
    img = img + rng.normal(0, 0.03, (h, w))
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def synth_vww(*, size: tuple[int, int], seed: int, per_class: int | None,
              cache_dir: Path | None, progress: Progress | None) -> Dataset:
    per_class = per_class or DEFAULT_PER_CLASS
    n_held = held_out_size(per_class)
    counts = {"train": per_class, "val": n_held, "test": n_held}
    rng = np.random.default_rng([seed, 3])
    plan = {split: [(label, int(rng.integers(2**62))) for label in (0, 1) for _ in range(n)]
            for split, n in counts.items()}
    plan = {split: [items[i] for i in rng.permutation(len(items))]
            for split, items in plan.items()}
    h, w = size

    def build() -> dict[str, np.ndarray]:
        notify(progress, f"synth:vww: drawing {sum(len(p) for p in plan.values())} images")
        return {split: np.stack([vww_image(h, w, label == 1, s) for label, s in items])
                for split, items in plan.items()}

    arrays = _cached("vww", {"seed": seed, "per_class": per_class, "size": [h, w]}, build,
                     cache_dir, progress)
    x = {split: (arrays[split].astype(np.float32) / 255.0)[..., None] for split in plan}
    y = {split: labels([label for label, _ in items]) for split, items in plan.items()}
    return Dataset(
        task="vww", classes=list(VWW_CLASSES), x_train=x["train"], y_train=y["train"],
        x_val=x["val"], y_val=y["val"], x_test=x["test"], y_test=y["test"], extra_tests={},
        source="synth:vww", test_name="synthetic test images", frontend=f"grayscale {h}x{w}, "
        f"[0, 1]", notes=[f"plumbing only: stick figures vs. shapes; {NOT_A_BENCHMARK}",
                          f"{per_class} images per class in train, {n_held} in val and test "
                          f"(seed {seed})"])
