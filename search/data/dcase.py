"""DCASE 2020 Task 2 (Koizumi et al. 2020, arXiv 2006.05822) for the ``ad`` space, as
MicroNets (arXiv 2010.11267, AD) uses it: a classifier of the machine ids of one machine
type, trained on normal sounds only; a test file's anomaly score is how little the
classifier believes the file's own id (:func:`anomaly_scores`), and the task's metric is the
AUC per machine id (:func:`auc_per_machine_id`).

The published layout (the development and additional training sets)::

    <dir>/<machine_type>/train/normal_id_00_00000000.wav     16 kHz mono, 10 s
    <dir>/<machine_type>/test/normal_id_00_00000000.wav
    <dir>/<machine_type>/test/anomaly_id_00_00000000.wav

Machine types: ToyCar, ToyConveyor, fan, pump, slider, valve. The set loads one of them:
``?machine=fan`` in the spec, else the first in alphabetical order (case-folded, so ToyCar
on the full development set); a directory that itself holds ``train/`` and ``test/`` is
taken as one machine type. The machine ids of its training files are the classes (4 in
most types: the ``ad`` space's head has 4 outputs). The task has no validation split: 10% of
each id's training files (seeded, whole files) are held out as one.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.data.audio import read_wav
from search.data.base import (
    ADTestClip,
    Dataset,
    DatasetError,
    Progress,
    labels,
    notify,
    stack,
    subsample,
)
from search.data.frontends import AD_MELS, AD_PATCH_FRAMES, log_mel_patches

FILE_RE = re.compile(r"^(normal|anomaly)_id_(\d+)_(\d+)\.wav$")
LAYOUT = ("<dir>/<machine_type>/train/normal_id_00_00000000.wav and "
          "<dir>/<machine_type>/test/{normal,anomaly}_id_00_00000000.wav (16 kHz mono)")
VAL_FRACTION = 0.1
#: files read and turned into patches at a time
CHUNK = 64
PATCH_SHAPE = (AD_PATCH_FRAMES, AD_MELS, 1)

#: loads one clip's waveform (16 kHz float32) when called
ClipSource = Callable[[], np.ndarray]


@dataclass(frozen=True)
class _File:
    path: Path
    machine_id: str  # "id_00"
    anomaly: bool


def machine_types(root: Path) -> list[str]:
    """The machine-type folders of ``root`` (those with ``train/*.wav``), in the order the
    default pick uses."""
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if any((p / "train").glob("*.wav"))]
    return sorted(found, key=lambda name: (name.casefold(), name))


def layout_problems(root: Path) -> list[str]:
    if any((root / "train").glob("*.wav")) or machine_types(root):
        return []
    return ["<machine_type>/train/*.wav folders"]


def _files(folder: Path) -> list[_File]:
    out = []
    for path in sorted(folder.glob("*.wav")):
        m = FILE_RE.match(path.name)
        if m is None:
            raise DatasetError(f"{path}: not a DCASE 2020 Task 2 file name; the files are named "
                               f"normal_id_00_00000000.wav or anomaly_id_00_00000000.wav")
        out.append(_File(path, f"id_{m.group(2)}", m.group(1) == "anomaly"))
    return out


def _choose_type(root: Path, machine: str | None) -> Path:
    if any((root / "train").glob("*.wav")):
        if machine is not None and machine != root.name:
            raise DatasetError(f"{root} holds one machine type ({root.name}); ?machine={machine} "
                               f"names another: drop it or point at the parent folder")
        return root
    types = machine_types(root)
    if machine is None:
        return root / types[0]
    if machine not in types:
        raise DatasetError(f"{root} has no machine type {machine!r} with train/*.wav; it has "
                           f"{', '.join(types)}")
    return root / machine


def load_dcase(root: Path, *, machine: str | None, max_classes: int, seed: int,
               per_class: int | None, progress: Progress | None) -> Dataset:
    """One machine type of ``root`` (the layout above; :func:`layout_problems` passed)."""
    folder = _choose_type(root, machine)
    train = [f for f in _files(folder / "train") if not f.anomaly]
    test = _files(folder / "test") if (folder / "test").is_dir() else []
    ids = sorted({f.machine_id for f in train})
    if len(ids) > max_classes:
        raise DatasetError(f"{folder.name} has {len(ids)} machine ids ({', '.join(ids)}); the ad "
                           f"space's head classifies {max_classes}: pick another type with "
                           f"?machine=NAME")
    strays = sorted({f.machine_id for f in test} - set(ids))
    if strays:
        raise DatasetError(f"{folder / 'test'} has machine ids with no training files "
                           f"({', '.join(strays)}); the classifier cannot score them")
    if not any(not f.anomaly for f in test) or not any(f.anomaly for f in test):
        raise DatasetError(f"{folder / 'test'} needs normal_id_*.wav and anomaly_id_*.wav files: "
                           f"the AUC compares the two")
    rng = np.random.default_rng(seed)
    files_cap = None
    if per_class is not None:
        patches = len(log_mel_patches(read_wav(train[0].path)))
        files_cap = max(1, math.ceil(per_class / patches))
    split: dict[str, list[tuple[ClipSource, int]]] = {"train": [], "val": []}
    test_sources: list[tuple[ClipSource, int, bool]] = []
    for index, machine_id in enumerate(ids):
        paths = [str(f.path) for f in train if f.machine_id == machine_id]
        order = subsample(paths, None, rng)
        # At least one validation file where an id has two or more.
        n_val = max(min(1, len(order) - 1), round(len(order) * VAL_FRACTION))
        for name, chosen in (("val", order[:n_val]), ("train", order[n_val:])):
            chosen = chosen[:files_cap] if files_cap else chosen
            split[name] += [(_reader(Path(p)), index) for p in chosen]
        for anomaly in (False, True):
            paths = [str(f.path) for f in test
                     if f.machine_id == machine_id and f.anomaly == anomaly]
            test_sources += [(_reader(Path(p)), index, anomaly)
                             for p in subsample(paths, files_cap, rng)]
    notes = [f"DCASE 2020 Task 2, machine type {folder.name}: machine-ID classification "
             f"(MicroNets AD); anomaly score and AUC per id from ad_test"]
    if len(ids) < max_classes:
        notes.append(f"{len(ids)} machine ids: {max_classes - len(ids)} of the head's "
                     f"{max_classes} outputs stay unused")
    return build_ad_dataset(ids, split["train"], split["val"], test_sources,
                            source=str(folder), notes=notes, test_name="test normal clips",
                            progress=progress)


def _reader(path: Path) -> ClipSource:
    return lambda: read_wav(path)


def _patches(sources: Sequence[ClipSource], name: str,
             progress: Progress | None) -> list[np.ndarray]:
    """Each clip's ``(P, 32, 32, 1)`` patches; clips of one length share one STFT call."""
    out: list[np.ndarray] = []
    for start in range(0, len(sources), CHUNK):
        audio = [src() for src in sources[start:start + CHUNK]]
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, clip in enumerate(audio):
            by_length[len(clip)].append(i)
        part: list[np.ndarray | None] = [None] * len(audio)
        for group in by_length.values():
            patches = log_mel_patches(np.stack([audio[i] for i in group]))
            for k, i in enumerate(group):
                part[i] = patches[k]
        out += [p for p in part if p is not None]
        notify(progress, f"ad {name}: {start + len(audio)}/{len(sources)} clips")
    return out


def _rows(sources: Sequence[tuple[ClipSource, int]], name: str,
          progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
    patches = _patches([src for src, _ in sources], name, progress)
    y = labels(np.repeat([label for _, label in sources], [len(p) for p in patches]))
    return stack(patches, PATCH_SHAPE), y


def build_ad_dataset(classes: list[str], train: Sequence[tuple[ClipSource, int]],
                     val: Sequence[tuple[ClipSource, int]],
                     test: Sequence[tuple[ClipSource, int, bool]], *, source: str,
                     notes: list[str], test_name: str, progress: Progress | None) -> Dataset:
    """The AD dataset of clips: training and validation patches by machine id, the patches of
    the normal test clips as the test split, every test file in ``ad_test``."""
    x_train, y_train = _rows(train, "train", progress)
    x_val, y_val = _rows(val, "val", progress)
    test_patches = _patches([src for src, _, _ in test], "test", progress)
    ad_test = [ADTestClip(p, label, anomaly)
               for p, (_, label, anomaly) in zip(test_patches, test, strict=True)]
    normal = [clip for clip in ad_test if not clip.is_anomaly]
    return Dataset(
        task="ad", classes=list(classes), x_train=x_train, y_train=y_train, x_val=x_val,
        y_val=y_val, x_test=stack([c.patches for c in normal], PATCH_SHAPE),
        y_test=labels(np.repeat([c.machine_id for c in normal],
                                [len(c.patches) for c in normal])),
        extra_tests={}, source=source, notes=notes, test_name=test_name,
        frontend="log-mel 32x32 patches (DCASE 2020 baseline STFT, 128 -> 32 mel bands)",
        ad_test=ad_test)


def anomaly_scores(clips: Sequence[ADTestClip],
                   predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per test file: the mean over its patches of ``-log p(own machine id)``, where
    ``predict`` maps patches ``(P, 32, 32, 1)`` to class probabilities ``(P, classes)``
    (a Keras model's ``predict``, or softmax of a TFLite model's output). A normal sound
    of a machine should be recognised as that machine; a poorly recognised one is anomalous
    (the ID-classification systems of DCASE 2020 Task 2)."""
    scores = np.empty(len(clips), np.float64)
    for i, clip in enumerate(clips):
        probs = np.asarray(predict(clip.patches), np.float64)
        scores[i] = float(np.mean(-np.log(np.clip(probs[:, clip.machine_id], 1e-12, 1.0))))
    return scores


def auc_per_machine_id(scores: Sequence[float] | np.ndarray, ids: Sequence[int] | np.ndarray,
                       is_anomaly: Sequence[bool] | np.ndarray) -> dict[int, float]:
    """ROC AUC of anomaly ``scores`` (higher = more anomalous) per machine id, the DCASE 2020
    Task 2 metric (Koizumi et al. 2020; ``sklearn.metrics.roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores, np.float64)
    i = np.asarray(ids)
    a = np.asarray(is_anomaly, bool)
    if not len(s) == len(i) == len(a):
        raise DatasetError(f"scores, ids and is_anomaly differ in length ({len(s)}, {len(i)}, "
                           f"{len(a)}); give one of each per test file")
    out: dict[int, float] = {}
    for machine_id in sorted(set(i.tolist())):
        mask = i == machine_id
        if a[mask].all() or not a[mask].any():
            raise DatasetError(f"machine id {machine_id} has only "
                               f"{'anomalous' if a[mask].all() else 'normal'} test files; its "
                               f"AUC needs both")
        out[int(machine_id)] = float(roc_auc_score(a[mask], s[mask]))
    return out
