"""Front ends: waveforms and images to the features a search space's models take.

Every function takes a batch (a leading axis of clips or images) and returns float32. The
features are what the model takes, unnormalized: MFCCs as TensorFlow computes them, log-mel
energies in dB, image pixels in [0, 1]. The int8 converter (``search.convert``) calibrates its
input scale and zero point on these same arrays, so no mean or variance is folded in here
that a deployed pipeline would have to repeat.

TensorFlow is imported inside the functions, never when this module is imported.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from search.data.base import SAMPLE_RATE, DatasetError

# --------------------------------------------------------------------------------------------
# KWS: 49 x 10 MFCCs of a 1 s clip
# --------------------------------------------------------------------------------------------

ML_KWS = "ml-kws"
TF_SIGNAL = "tf.signal"

CLIP_SAMPLES = SAMPLE_RATE  # 1 s clips (Warden 2018, arXiv 1804.03209)
# ML-KWS-for-MCU (Zhang et al. 2017, "Hello Edge", arXiv 1711.07128: 40 ms frames, 20 ms
# stride, 10 MFCCs, 49 x 10; the repo's train_commands.txt passes these flags for DS-CNN).
WINDOW_SAMPLES = 640  # window_size_ms 40 at 16 kHz
STRIDE_SAMPLES = 320  # window_stride_ms 20
DCT_COEFFICIENTS = 10  # dct_coefficient_count 10
# tf.contrib.audio.mfcc's defaults, which ML-KWS-for-MCU input_data.py leaves as they are.
MEL_LOW_HZ = 20.0
MEL_HIGH_HZ = 4000.0
FILTERBANK_CHANNELS = 40
KWS_FRAMES = 1 + (CLIP_SAMPLES - WINDOW_SAMPLES) // STRIDE_SAMPLES  # 49

#: clips per TensorFlow call: large enough that the per-op overhead vanishes, small enough
#: that the (N, 49, 513) spectrogram stays around 200 MB
BATCH = 2048


def import_tf() -> Any:
    """TensorFlow, imported with its start-up chatter silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
    except ImportError as e:
        raise DatasetError("the data front ends need TensorFlow; install mcuprof with its ml "
                           "extra: pip install -e '.[ml]'") from e
    return tf


def _clips(audio: np.ndarray, samples: int) -> tuple[np.ndarray, bool]:
    """``audio`` as float32 ``(N, samples)`` and whether one clip (1-D) was given."""
    a = np.asarray(audio, dtype=np.float32)
    single = a.ndim == 1
    if single:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != samples:
        raise DatasetError(f"the KWS front end takes 1 s clips of {samples} samples at 16 kHz, "
                           f"shape ({samples},) or (N, {samples}); got {list(np.shape(audio))}")
    return a, single


def _batched(audio: np.ndarray, out_shape: tuple[int, ...],
             fn: Callable[[np.ndarray], Any]) -> np.ndarray:
    clips, single = _clips(audio, CLIP_SAMPLES)
    out = np.empty((len(clips), *out_shape), np.float32)
    for start in range(0, len(clips), BATCH):
        chunk = clips[start:start + BATCH]
        out[start:start + len(chunk)] = np.asarray(fn(chunk))
    return out[0] if single else out


def mfcc_ml_kws(audio: np.ndarray) -> np.ndarray:
    """ML-KWS-for-MCU's MFCCs: ``(16000,) -> (49, 10)``, or ``(N, 16000) -> (N, 49, 10)``.

    ``AudioSpectrogram`` (640-sample Hann windows, stride 320, squared magnitude, FFT 1024)
    then ``Mfcc`` (40 mel channels 20-4000 Hz, log, DCT, first 10), the ops of the repo's
    input_data.py. ``AudioSpectrogram`` reads ``[samples, channels]`` and returns one
    spectrogram per channel, so a batch of clips goes in as the channels of one call.
    """
    tf = import_tf()

    def run(chunk: np.ndarray) -> Any:
        spectrogram = tf.raw_ops.AudioSpectrogram(
            input=tf.constant(np.ascontiguousarray(chunk.T)), window_size=WINDOW_SAMPLES,
            stride=STRIDE_SAMPLES, magnitude_squared=True)
        return tf.raw_ops.Mfcc(
            spectrogram=spectrogram, sample_rate=SAMPLE_RATE,
            upper_frequency_limit=MEL_HIGH_HZ, lower_frequency_limit=MEL_LOW_HZ,
            filterbank_channel_count=FILTERBANK_CHANNELS,
            dct_coefficient_count=DCT_COEFFICIENTS).numpy()

    return _batched(audio, (KWS_FRAMES, DCT_COEFFICIENTS), run)


def mfcc_tf_signal(audio: np.ndarray) -> np.ndarray:
    """The MLPerf Tiny KWS reference's MFCCs, built from ``tf.signal``: same shapes as
    :func:`mfcc_ml_kws`.

    STFT (640-sample periodic Hann frames, stride 320, FFT 1024), magnitude (not squared),
    40 HTK mel bands 20-4000 Hz, ``log(mel + 1e-6)``, ``mfccs_from_log_mel_spectrograms``
    (an orthonormal DCT-II), the first 10 (MLPerf Tiny, Banbury et al. 2021, arXiv
    2106.07597, KWS; the window and stride here are ML-KWS-for-MCU's, so both front ends
    give 49 x 10). The numbers differ from :func:`mfcc_ml_kws`: train and deploy with one.
    """
    tf = import_tf()
    mel = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=FILTERBANK_CHANNELS, num_spectrogram_bins=1024 // 2 + 1,
        sample_rate=SAMPLE_RATE, lower_edge_hertz=MEL_LOW_HZ, upper_edge_hertz=MEL_HIGH_HZ)

    def run(chunk: np.ndarray) -> Any:
        stft = tf.signal.stft(tf.constant(chunk), frame_length=WINDOW_SAMPLES,
                              frame_step=STRIDE_SAMPLES, fft_length=1024)
        log_mel = tf.math.log(tf.tensordot(tf.abs(stft), mel, 1) + 1e-6)
        return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :DCT_COEFFICIENTS]

    return _batched(audio, (KWS_FRAMES, DCT_COEFFICIENTS), run)


KWS_FRONTENDS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    ML_KWS: mfcc_ml_kws,
    TF_SIGNAL: mfcc_tf_signal,
}

# --------------------------------------------------------------------------------------------
# AD: 32 x 32 log-mel patches
# --------------------------------------------------------------------------------------------

# The DCASE 2020 Task 2 baseline (Koizumi et al. 2020, arXiv 2006.05822): a 1024-point
# STFT with hop 512 at 16 kHz, 128 mel bands, power 2, 10 log10(mel + eps); it then stacks 5
# frames for a dense autoencoder. MicroNets (Banbury et al. 2021, arXiv 2010.11267, AD) feeds
# its CNNs 32 x 32 log-mel patches instead. Ours: the baseline's STFT and 128 bands, the mel
# power averaged over groups of 4 adjacent bands (128 -> 32, before the log, so a patch is the
# baseline's spectrogram downsampled), and 32 consecutive frames per patch (32 * 512 / 16000
# = 1.02 s), patches not overlapping. Patches are (time, mel, 1), as KWS's are (time, MFCC, 1).
AD_N_FFT = 1024
AD_HOP = 512
AD_BASELINE_MELS = 128
AD_MELS = 32
AD_PATCH_FRAMES = 32
AD_PATCH_HOP = 32
AD_EPS = sys.float_info.epsilon  # the baseline's floor under the log


def ad_frames(samples: int) -> int:
    """STFT frames of a clip of ``samples`` samples (frames that fit; no padding)."""
    return 0 if samples < AD_N_FFT else 1 + (samples - AD_N_FFT) // AD_HOP


def ad_patches_per_clip(samples: int) -> int:
    frames = ad_frames(samples)
    return 0 if frames < AD_PATCH_FRAMES else 1 + (frames - AD_PATCH_FRAMES) // AD_PATCH_HOP


def log_mel(audio: np.ndarray) -> np.ndarray:
    """``(N, T)`` waveforms at 16 kHz -> ``(N, frames, 32)`` log-mel energies in dB."""
    tf = import_tf()
    clips = np.asarray(audio, np.float32)
    if clips.ndim != 2:
        raise DatasetError(f"log_mel takes (N, samples) waveforms; got {list(clips.shape)}")
    mel = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=AD_BASELINE_MELS, num_spectrogram_bins=AD_N_FFT // 2 + 1,
        sample_rate=SAMPLE_RATE, lower_edge_hertz=0.0, upper_edge_hertz=SAMPLE_RATE / 2)
    stft = tf.signal.stft(tf.constant(clips), frame_length=AD_N_FFT, frame_step=AD_HOP,
                          fft_length=AD_N_FFT)
    power = tf.math.square(tf.abs(stft))
    bands = tf.tensordot(power, mel, 1).numpy()  # (N, frames, 128)
    pooled = bands.reshape(*bands.shape[:-1], AD_MELS, AD_BASELINE_MELS // AD_MELS).mean(-1)
    return (10.0 * np.log10(pooled + AD_EPS)).astype(np.float32)


def log_mel_patches(audio: np.ndarray) -> np.ndarray:
    """Waveforms at 16 kHz to 32 x 32 log-mel patches: ``(T,) -> (P, 32, 32, 1)``, or
    ``(N, T) -> (N, P, 32, 32, 1)`` for clips of one length (10 s -> 9 patches)."""
    a = np.asarray(audio, np.float32)
    single = a.ndim == 1
    clips = a[None] if single else a
    patches = ad_patches_per_clip(clips.shape[-1])
    if patches == 0:
        need = AD_N_FFT + (AD_PATCH_FRAMES - 1) * AD_HOP
        raise DatasetError(f"an AD clip must be at least {need} samples ({need / SAMPLE_RATE:.2f} "
                           f"s at 16 kHz) for one 32 x 32 patch; got {clips.shape[-1]}")
    spec = log_mel(clips)
    starts = [p * AD_PATCH_HOP for p in range(patches)]
    out = np.stack([spec[:, s:s + AD_PATCH_FRAMES] for s in starts], axis=1)[..., None]
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# VWW: grayscale images at the input size
# --------------------------------------------------------------------------------------------


def decode_image(data: bytes, name: str) -> np.ndarray:
    """An encoded image (JPEG, PNG, BMP, GIF's first frame) as uint8 ``(H, W, C)``."""
    tf = import_tf()
    try:
        return np.asarray(tf.io.decode_image(data, expand_animations=False).numpy())
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        raise DatasetError(f"cannot decode {name} as an image ({str(e).splitlines()[0]}); "
                           f"replace or remove the file") from e


def grayscale_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 ``(H, W, C)`` image (C = 1, 2, 3 or 4) as float32 ``(h, w, 1)`` in [0, 1]:
    ``tf.image.rgb_to_grayscale`` (ITU-R BT.601 weights), alpha dropped, then
    ``tf.image.resize`` bilinear with antialiasing (images are mostly shrunk)."""
    tf = import_tf()
    img = tf.image.convert_image_dtype(tf.constant(image), tf.float32)
    channels = int(img.shape[-1])
    if channels in (3, 4):
        img = tf.image.rgb_to_grayscale(img[..., :3])
    elif channels == 2:
        img = img[..., :1]
    resized = tf.image.resize(img, size, method="bilinear", antialias=True)
    return np.clip(resized.numpy(), 0.0, 1.0).astype(np.float32)
