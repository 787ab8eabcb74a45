"""WAV files in, float32 mono at 16 kHz out (scipy: no TensorFlow needed to read audio)."""

from __future__ import annotations

import warnings
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from search.data.base import SAMPLE_RATE, DatasetError


def to_float(data: np.ndarray) -> np.ndarray:
    """PCM samples as float32 in [-1, 1): int16 / 32768 as ``tf.audio.decode_wav`` scales."""
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:
        return (data.astype(np.float64) / 2.0**31).astype(np.float32)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    return data.astype(np.float32)


def resample(audio: np.ndarray, rate: int, to: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` at ``rate`` Hz resampled to ``to`` Hz (polyphase, scipy's Kaiser window)."""
    if rate == to:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly  # scipy.signal takes ~1 s to import: only when needed

    g = gcd(rate, to)
    return resample_poly(audio, to // g, rate // g).astype(np.float32)


def read_wav(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The WAV file at ``path`` as float32 mono at ``rate`` Hz (channels averaged)."""
    try:
        with warnings.catch_warnings():
            # Unknown chunks (LIST, cue) are skipped with a warning: not a problem here.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            file_rate, data = wavfile.read(path)
    except (OSError, ValueError, EOFError) as e:
        raise DatasetError(f"cannot read {path} as a WAV file: {e}; replace or remove "
                           f"the file") from e
    audio = to_float(np.asarray(data))
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return resample(audio, int(file_rate), rate)


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """Zero-padded at the end or cut to ``samples``, as ``tf.audio.decode_wav`` with
    ``desired_samples`` does (ML-KWS-for-MCU input_data.py reads clips that way)."""
    if len(audio) >= samples:
        return audio[:samples]
    return np.pad(audio, (0, samples - len(audio)))
