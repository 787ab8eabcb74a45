"""The dataset record every loader returns, its error, and small helpers the loaders share.

No TensorFlow here: ``import search.data`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from search.errors import SearchError

#: Every audio front end works at 16 kHz: Speech Commands and DCASE 2020 Task 2 are recorded
#: at that rate (Warden 2018, arXiv 1804.03209; Koizumi et al. 2020, arXiv 2006.05822).
SAMPLE_RATE = 16000

#: A callback that takes one line of progress (``print`` will do).
Progress = Callable[[str], None]


class DatasetError(SearchError):
    """A dataset spec, directory or file was wrong; the message says which and what to do."""


class ADTestClip(NamedTuple):
    """One anomaly-detection test file: its patches ``(P, 32, 32, 1)``, the class index of
    its machine id, and whether it is anomalous (DCASE 2020 Task 2 scores per file)."""

    patches: np.ndarray
    machine_id: int
    is_anomaly: bool


@dataclass
class Dataset:
    """Features ready for a model of one search space: ``x_*`` float32 of shape
    ``(N, *input_shape)``, ``y_*`` int64 class indices into ``classes``."""

    task: str
    classes: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    #: more held-out sets, by name: e.g. {"held-out voices": (x, y)}
    extra_tests: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str
    notes: list[str]
    test_name: str
    #: the front end that made the features, e.g. "mfcc ml-kws"
    frontend: str = ""
    #: anomaly detection (task "ad"): every test file, normal and anomalous, for the AUC
    ad_test: list[ADTestClip] | None = field(default=None)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def describe(self) -> str:
        """One line: the set, its classes, and the examples per split."""
        parts = [f"train {len(self.y_train)}", f"val {len(self.y_val)}",
                 f"test {len(self.y_test)} ({self.test_name})"]
        parts += [f"{name} {len(y)}" for name, (_, y) in self.extra_tests.items()]
        if self.ad_test is not None:
            anomalous = sum(1 for clip in self.ad_test if clip.is_anomaly)
            parts.append(f"AD test files {len(self.ad_test)} ({anomalous} anomalous)")
        shape = "x".join(str(d) for d in self.input_shape)
        return (f"{self.task} from {self.source}: {len(self.classes)} classes "
                f"({', '.join(self.classes)}); {', '.join(parts)}; input {shape}"
                + (f", {self.frontend}" if self.frontend else ""))


def notify(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def subsample(items: Sequence[str], limit: int | None, rng: np.random.Generator) -> list[str]:
    """``items`` in a seeded random order, cut to ``limit`` (all of them when None)."""
    order = rng.permutation(len(items))
    if limit is not None:
        order = order[:limit]
    return [items[i] for i in order]


def stack(arrays: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``arrays`` stacked to float32 ``(N, *shape)``; an empty ``(0, *shape)`` for none."""
    if not arrays:
        return np.zeros((0, *shape), np.float32)
    return np.concatenate([np.asarray(a, np.float32).reshape(-1, *shape) for a in arrays])


def labels(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)
