"""Datasets and front ends for the DNAS search: features ready for a search space's models.

::

    from search.data import load_dataset
    ds = load_dataset("synth:kws", "kws", per_class=60, progress=print)
    ds.x_train.shape                     # (720, 49, 10, 1) float32 MFCCs; ds.y_train int64
    ds.describe()                        # one line: classes and examples per split
    ds.extra_tests["held-out voices"]    # (x, y) of espeak-ng voices never trained on

    load_dataset("/data/speech_commands_v0.02", "kws")       # Google Speech Commands v0.02
    load_dataset("/data/dcase2020/dev_data?machine=fan", "ad")  # DCASE 2020 Task 2
    load_dataset("/data/vw_coco2014_96", "vww", input_shape=(96, 96, 1))

Specs, layouts, front ends and what the synthetic sets are (a test of the pipeline, not an
accuracy benchmark): docs/data.md. Modules: ``loader`` (:func:`load_dataset`), ``frontends``
(MFCC, log-mel patches, grayscale resize), ``speech_commands``, ``dcase``, ``vww`` (the
published layouts), ``synth`` (the offline generators), ``audio`` (WAV reading).
TensorFlow is imported only when features are computed, not by ``import search.data``.
"""

from __future__ import annotations

from search.data.base import SAMPLE_RATE, ADTestClip, Dataset, DatasetError
from search.data.dcase import anomaly_scores, auc_per_machine_id
from search.data.loader import load_dataset, parse_spec

__all__ = [
    "SAMPLE_RATE",
    "ADTestClip",
    "Dataset",
    "DatasetError",
    "anomaly_scores",
    "auc_per_machine_id",
    "load_dataset",
    "parse_spec",
]
