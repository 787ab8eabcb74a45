"""Google Speech Commands v0.02 (Warden 2018, arXiv 1804.03209) for the ``kws`` space, in
the 12 classes of ML-KWS-for-MCU (Zhang et al. 2017, arXiv 1711.07128) and MicroNets.

The published layout::

    <dir>/<word>/<speaker>_nohash_<n>.wav     16 kHz mono, up to 1 s
    <dir>/_background_noise_/*.wav            minutes of noise (white, pink, dishes, ...)
    <dir>/validation_list.txt                 <word>/<file>.wav, one a line
    <dir>/testing_list.txt

The sets follow ML-KWS-for-MCU's input_data.py (TensorFlow's speech_commands example, which
it forked): the 10 keywords; ``_unknown_`` drawn from every other word and ``_silence_`` cut
from the background noise, each 10% of the keyword clips of the split (about one keyword
class); training clips shifted by up to +-100 ms and mixed with background noise 80% of the
time at a volume up to 0.1. Validation and test clips are neither shifted nor mixed.
ML-KWS-for-MCU redraws that augmentation every step; here it is drawn once, seeded (load with
another seed for another draw).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.data.audio import fit_length, read_wav
from search.data.base import (
    SAMPLE_RATE,
    Dataset,
    DatasetError,
    Progress,
    labels,
    notify,
    stack,
    subsample,
)
from search.data.frontends import CLIP_SAMPLES, DCT_COEFFICIENTS, KWS_FRAMES

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
#: label index = position: silence, unknown, then the keywords (ML-KWS-for-MCU
#: input_data.py prepare_words_list)
KWS_CLASSES = [SILENCE, UNKNOWN, *KEYWORDS]
BACKGROUND_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
LAYOUT = ("<dir>/<word>/*.wav (16 kHz mono, 1 s), <dir>/_background_noise_/*.wav, "
          "<dir>/validation_list.txt and <dir>/testing_list.txt")

# ML-KWS-for-MCU train.py flags (TensorFlow speech_commands' defaults).
SILENCE_PERCENTAGE = 10.0
UNKNOWN_PERCENTAGE = 10.0
BACKGROUND_FREQUENCY = 0.8
BACKGROUND_VOLUME = 0.1
TIME_SHIFT_SAMPLES = SAMPLE_RATE * 100 // 1000  # time_shift_ms 100
#: clips read, mixed and turned into features at a time (bounds memory on the full set)
CHUNK = 2048


@dataclass
class _Item:
    """One clip to render: a file (None for silence), its label, its augmentation."""

    path: Path | None
    label: int
    shift: int = 0
    background: int = 0  # index into the background files
    background_offset: int = 0
    background_volume: float = 0.0


def layout_problems(root: Path) -> list[str]:
    """What ``root`` lacks of the Speech Commands layout (empty: the layout is there)."""
    missing = [name for name in (VALIDATION_LIST, TESTING_LIST) if not (root / name).is_file()]
    if not any((root / BACKGROUND_DIR).glob("*.wav")):
        missing.append(f"{BACKGROUND_DIR}/*.wav")
    words = [w for w in KEYWORDS if not any((root / w).glob("*.wav"))]
    if words:
        missing.append(f"keyword folders with .wav files ({', '.join(words)})")
    return missing


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _plan_split(known: dict[int, list[Path]], unknown: Sequence[Path], *, training: bool,
                background_lengths: list[int], per_class: int | None,
                rng: np.random.Generator) -> list[_Item]:
    """The clips of one split: keywords (capped at ``per_class`` each), unknown and silence
    at 10% of the keyword count each (input_data.py prepare_data_index), shuffled."""
    items: list[_Item] = []
    for label, paths in sorted(known.items()):
        chosen = subsample([str(p) for p in paths], per_class, rng)
        items += [_Item(Path(p), label) for p in chosen]
    extra_unknown = math.ceil(len(items) * UNKNOWN_PERCENTAGE / 100)
    extra_silence = math.ceil(len(items) * SILENCE_PERCENTAGE / 100)
    items += [_Item(Path(p), 1) for p in subsample([str(p) for p in unknown], extra_unknown, rng)]
    items += [_Item(None, 0) for _ in range(extra_silence)]
    items = [items[i] for i in rng.permutation(len(items))]
    for item in items:
        silence = item.path is None
        # input_data.py get_data: background for training clips and for every silence clip.
        if not (training or silence):
            continue
        item.background = int(rng.integers(len(background_lengths)))
        room = background_lengths[item.background] - CLIP_SAMPLES
        item.background_offset = int(rng.integers(room + 1))
        if silence:
            # TensorFlow's later input_data.py: silence at a volume in [0, 1] in every split
            # (the fork ML-KWS-for-MCU took leaves val/test silence digitally zero).
            item.background_volume = float(rng.uniform(0.0, 1.0))
        elif rng.uniform(0.0, 1.0) < BACKGROUND_FREQUENCY:
            item.background_volume = float(rng.uniform(0.0, BACKGROUND_VOLUME))
        if training and not silence:
            item.shift = int(rng.integers(-TIME_SHIFT_SAMPLES, TIME_SHIFT_SAMPLES))
    return items


def _render(item: _Item, backgrounds: list[np.ndarray]) -> np.ndarray:
    """The clip of ``item``: shifted foreground plus scaled background, clipped to [-1, 1]
    (input_data.py: pad-and-slice shift, ``background_add``, ``clip_by_value``)."""
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    if item.path is not None:
        fg = fit_length(read_wav(item.path), CLIP_SAMPLES)
        s = item.shift
        if s > 0:
            clip[s:] = fg[:CLIP_SAMPLES - s]
        elif s < 0:
            clip[:CLIP_SAMPLES + s] = fg[-s:]
        else:
            clip[:] = fg
    if item.background_volume > 0:
        bg = backgrounds[item.background]
        start = item.background_offset
        clip += item.background_volume * bg[start:start + CLIP_SAMPLES]
    return np.clip(clip, -1.0, 1.0)


def _features(items: list[_Item], backgrounds: list[np.ndarray],
              frontend: Callable[[np.ndarray], np.ndarray], name: str,
              progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
    chunks = []
    for start in range(0, len(items), CHUNK):
        part = items[start:start + CHUNK]
        chunks.append(frontend(np.stack([_render(item, backgrounds) for item in part])))
        notify(progress, f"speech commands {name}: {start + len(part)}/{len(items)} clips")
    x = stack(chunks, (KWS_FRAMES, DCT_COEFFICIENTS, 1))
    return x, labels([item.label for item in items])


def load_speech_commands(root: Path, *, frontend: Callable[[np.ndarray], np.ndarray],
                         frontend_name: str, seed: int, per_class: int | None,
                         progress: Progress | None) -> Dataset:
    """The 12-class KWS set of ``root`` (the layout above; :func:`layout_problems` passed)."""
    validation = _read_list(root / VALIDATION_LIST)
    testing = _read_list(root / TESTING_LIST)
    splits: dict[str, tuple[dict[int, list[Path]], list[Path]]] = {
        name: ({}, []) for name in ("train", "val", "test")}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith("_"):
            continue
        label = KWS_CLASSES.index(folder.name) if folder.name in KEYWORDS else 1
        for path in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{path.name}"
            split = "val" if rel in validation else "test" if rel in testing else "train"
            known, unknown = splits[split]
            if label == 1:
                unknown.append(path)
            else:
                known.setdefault(label, []).append(path)
    backgrounds = [read_wav(p) for p in sorted((root / BACKGROUND_DIR).glob("*.wav"))]
    short = [i for i, b in enumerate(backgrounds) if len(b) < CLIP_SAMPLES]
    if short:
        raise DatasetError(f"{root / BACKGROUND_DIR} has files shorter than 1 s; silence clips "
                           f"are 1 s cuts of them: remove or lengthen them")
    lengths = [len(b) for b in backgrounds]
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (known, unknown) in splits.items():
        plan = _plan_split(known, unknown, training=name == "train", background_lengths=lengths,
                           per_class=per_class, rng=rng)
        out[name] = _features(plan, backgrounds, frontend, name, progress)
    if len(out["train"][1]) == 0:
        raise DatasetError(f"{root} has no training clips of the keywords: every clip is in "
                           f"{VALIDATION_LIST} or {TESTING_LIST}")
    return Dataset(
        task="kws", classes=list(KWS_CLASSES),
        x_train=out["train"][0], y_train=out["train"][1],
        x_val=out["val"][0], y_val=out["val"][1],
        x_test=out["test"][0], y_test=out["test"][1],
        extra_tests={}, source=str(root), frontend=f"mfcc {frontend_name}",
        test_name="Speech Commands test list",
        notes=[
            "Google Speech Commands v0.02, 12 classes as ML-KWS-for-MCU and MicroNets",
            "splits from validation_list.txt / testing_list.txt; unknown and silence 10% of "
            "the keyword clips of each split; training clips shifted +-100 ms, background "
            "noise on 80% at volume <= 0.1 (drawn once, seeded)",
        ] + ([f"at most {per_class} clips per keyword per split"] if per_class else []),
    )
