"""Visual Wake Words (Chowdhery et al. 2019, arXiv 1906.05721) for the ``vww`` space:
person / no person, grayscale at the space's input size (MicroNets, arXiv 2010.11267, VWW).

The layout of the published folders (MLPerf Tiny's ``vw_coco2014_96`` download is one)::

    <dir>/person/*.jpg|png
    <dir>/non_person/*.jpg|png      (also accepted: not_person/, no_person/)

Images are decoded with ``tf.io.decode_image``, turned to grayscale and resized to the input
H x W (:func:`search.data.frontends.grayscale_resize`); pixels are float32 in [0, 1]. The
folders carry no split: each class is split 80/10/10 into train, validation and test,
seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.data.base import Dataset, DatasetError, Progress, labels, notify, stack, subsample
from search.data.frontends import decode_image, grayscale_resize

PERSON = "person"
NEGATIVE_DIRS = ("non_person", "not_person", "no_person")
#: label 1 = a person is present, VWW's positive class
VWW_CLASSES = ["non_person", PERSON]
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif"})
LAYOUT = "<dir>/person/*.jpg|png and <dir>/non_person/*.jpg|png (or not_person/, no_person/)"
VAL_FRACTION = TEST_FRACTION = 0.1


def images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)


def layout_problems(root: Path) -> list[str]:
    missing = []
    if not images(root / PERSON):
        missing.append("person/ with images")
    if not any(images(root / d) for d in NEGATIVE_DIRS):
        missing.append("non_person/ (or not_person/, no_person/) with images")
    return missing


def split_sizes(n: int) -> tuple[int, int, int]:
    """Train, validation and test counts of a class of ``n`` images: 80/10/10, with at least
    one validation and one test image when there are three or more."""
    held = max(min(1, (n - 1) // 2), round(n * VAL_FRACTION))
    return n - 2 * held, held, held


def load_vww(root: Path, *, size: tuple[int, int], seed: int, per_class: int | None,
             progress: Progress | None) -> Dataset:
    """Person / no-person images of ``root`` (:func:`layout_problems` passed)."""
    rng = np.random.default_rng(seed)
    folders = {0: [root / d for d in NEGATIVE_DIRS], 1: [root / PERSON]}
    planned: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for label, dirs in folders.items():
        paths = [str(p) for d in dirs for p in images(d)]
        order = subsample(paths, None, rng)
        n_train, n_val, _ = split_sizes(len(order))
        parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        for name, chosen in parts.items():
            planned[name] += [(Path(p), label) for p in chosen[:per_class]]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    total = sum(len(v) for v in planned.values())
    done = 0
    for name, items in planned.items():
        pixels = []
        for path, _ in items:
            try:
                data = path.read_bytes()
            except OSError as e:
                raise DatasetError(f"cannot read {path}: {e.strerror}") from e
            pixels.append(grayscale_resize(decode_image(data, str(path)), size))
            done += 1
            if done % 500 == 0 or done == total:
                notify(progress, f"vww: {done}/{total} images")
        out[name] = stack(pixels, (*size, 1)), labels([label for _, label in items])
    used = [d.name for d in folders[0] if images(d)]
    return Dataset(
        task="vww", classes=list(VWW_CLASSES),
        x_train=out["train"][0], y_train=out["train"][1],
        x_val=out["val"][0], y_val=out["val"][1],
        x_test=out["test"][0], y_test=out["test"][1],
        extra_tests={}, source=str(root), test_name="seeded 10% test split",
        frontend=f"grayscale {size[0]}x{size[1]}, bilinear antialiased, [0, 1]",
        notes=[f"Visual Wake Words layout: person/ vs {', '.join(used)}; seeded 80/10/10 split"]
        + ([f"at most {per_class} images per class per split"] if per_class else []),
    )
