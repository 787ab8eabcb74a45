"""Full-integer int8 conversion, analysis, and the ``.tflite`` + sidecar pair on disk.

Conversion (:func:`to_int8_tflite`) uses TensorFlow's own converter with the settings that
make a model the bench firmware (and TFLite Micro with CMSIS-NN) runs:
``optimizations=[DEFAULT]``, a representative dataset, ``supported_ops =
[TFLITE_BUILTINS_INT8]`` and int8 input and output. The representative dataset is seeded
random data of the input's shape unless the caller passes real samples.

Every model is tagged with where it came from. The tags live in a sidecar JSON next to the
``.tflite`` (``<name>.json``: space, architecture, id, server tags, the layer list that
rebuilds it, ops, MACs, parameter, arena and plan bytes, and whether it fits each board)
rather than in the flatbuffer, so the ``.tflite`` stays exactly what the converter wrote and
any tool can read the tags. :func:`model_tags` (and ``search.spaces.tags_for`` for an
architecture) gives the ``backbone`` / ``arch`` tags the server takes at upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench_firmware.boards import BOARDS, HOST
from bench_firmware.errors import McuprofError
from search.errors import ConversionError, SearchError
from search.keras_builders import build_keras, import_keras, quiet
from search.network import Network, Shape
from search.spaces import Architecture, tags_for

#: Calibration samples drawn when the caller gives none (the zoo's figure, tests/zoo.py).
REPRESENTATIVE_SAMPLES = 32
SIDECAR_VERSION = 1

# --------------------------------------------------------------------------------------------
# Representative data and conversion
# --------------------------------------------------------------------------------------------


def random_representative(input_shape: Shape, *, samples: int = REPRESENTATIVE_SAMPLES,
                          seed: int = 0) -> np.ndarray:
    """``samples`` seeded random inputs, shape ``(samples, *input_shape)``, float32.

    White noise plus a per-sample, per-channel offset: i.i.d. noise alone averages to a
    constant under global pooling, which would calibrate deep layers to a single value.
    """
    rng = np.random.default_rng(seed)
    shape = (samples, *input_shape)
    x = 0.7 * rng.standard_normal(shape)
    x += 0.7 * rng.standard_normal((samples,) + (1,) * (len(input_shape) - 1)
                                   + (input_shape[-1],))
    return x.astype(np.float32)


def _samples(data: Any, input_shape: Shape) -> list[np.ndarray]:
    """User calibration data as a list of ``(1, *input_shape)`` float32 arrays."""
    items = list(data)
    if not items:
        raise SearchError("the representative dataset is empty; give at least one sample")
    out = []
    dims = ", ".join(str(d) for d in input_shape)
    for i, item in enumerate(items):
        a = np.asarray(item, dtype=np.float32)
        if a.shape == tuple(input_shape):
            a = a[None]
        if a.shape != (1, *input_shape):
            raise SearchError(
                f"representative sample {i} has shape {list(a.shape)}; the model's input is "
                f"{list(input_shape)} (give an array of shape [N, {dims}])")
        out.append(a)
    return out


@contextlib.contextmanager
def silence_native_output() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null: the TFLite converter's C++ code prints
    to them directly, past Python's ``sys.stdout`` / ``sys.stderr``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def to_int8_tflite(model: Any, representative: Any = None, *, seed: int = 0,
                   samples: int = REPRESENTATIVE_SAMPLES, silence: bool = True) -> bytes:
    """Convert a Keras ``model`` (batch size 1) to a full-integer int8 ``.tflite``.

    ``representative``: calibration inputs, an array ``[N, *input_shape]`` or an iterable of
    arrays; None draws ``samples`` seeded random inputs (:func:`random_representative`).
    ``silence`` hides the converter's native log lines.
    """
    tf, _ = import_keras()
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    data = (_samples(random_representative(input_shape, samples=samples, seed=seed),
                     input_shape)
            if representative is None else _samples(representative, input_shape))

    def dataset() -> Iterator[list[np.ndarray]]:
        for x in data:
            yield [x]

    def convert(conv: Any) -> bytes:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = dataset
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return bytes(conv.convert())

    guard = silence_native_output() if silence else contextlib.nullcontext()
    absl = logging.getLogger("absl")
    level = absl.level
    try:
        absl.setLevel(logging.ERROR)  # the graph-def path's deprecation notice, every call
        with quiet(), guard:
            try:
                return convert(_frozen_converter(tf, model))
            except Exception:  # the fast path failed: take the Keras (SavedModel) path
                return convert(tf.lite.TFLiteConverter.from_keras_model(model))
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ConversionError(f"the TFLite converter failed on {model.name}: "
                              f"{type(e).__name__}: {first}", name=model.name) from e
    finally:
        absl.setLevel(level)


def _frozen_converter(tf: Any, model: Any) -> Any:
    """A converter over the model's inference function with its variables frozen into
    constants, given without a trackable object so TensorFlow takes its graph-def path.

    ``from_keras_model`` writes and re-reads a SavedModel first and converts from it; on a
    DS-CNN-sized model that took ~3 s of a ~4 s conversion, and this path ~0.6 s, with the
    same operators (tests/search check the layers and run every model bit-exact against
    TFLM). TensorFlow 2.21 logs that this path is deprecated; :func:`to_int8_tflite` falls
    back to ``from_keras_model`` if it ever fails."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype)
    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(spec))
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen])


# --------------------------------------------------------------------------------------------
# Analysis and tags
# --------------------------------------------------------------------------------------------


def analyze_tflite(data: bytes, name: str = "model") -> dict[str, Any]:
    """Ops, MACs, parameter, arena and plan bytes (bench_firmware's compiler and analysis,
    as ``mcuprof analyze``), the operator list, and whether the model fits each board."""
    from bench_firmware.compiler import compile_model

    try:
        plan = compile_model(data, HOST, name=name, check_fit=False)
    except McuprofError:
        raise
    except Exception as e:
        raise ConversionError(f"{name}: bench_firmware could not compile the converted model: "
                              f"{e}", name=name) from e
    boards = {}
    for board in BOARDS.values():
        # The host plan's arena carries every kernel's extra scratch; the compiler drops
        # extras (weight copies, depthwise images) where a board's SRAM would not hold them,
        # so when the host arena is too large the board's own plan decides.
        arena_fits = plan.arena_bytes <= board.arena_capacity or compile_model(
            data, board, name=name, check_fit=False).arena_bytes <= board.arena_capacity
        plan_fits = plan.plan_bytes <= board.model_region_bytes
        boards[board.name] = {"arena_fits": arena_fits, "plan_fits": plan_fits,
                              "fits": arena_fits and plan_fits}
    return {
        "ops": plan.ops, "macs": plan.macs, "param_bytes": plan.param_bytes,
        "arena_bytes": plan.arena_bytes, "plan_bytes": plan.plan_bytes,
        "operators": [layer.op for layer in plan.layers],
        "input_shape": list(plan.input_shape), "output_shape": list(plan.output_shape),
        "boards": boards,
    }


def model_tags(item: Architecture | Network, *, preset: str | None = None,
             backbone: str | None = None) -> dict[str, str]:
    """Server tags of a model: ``backbone`` (its space, or the preset's family) and
    ``arch`` (the architecture id, or the network's structural digest), plus ``preset``."""
    if isinstance(item, Architecture):
        tags = tags_for(item)
    else:
        tags = {"backbone": backbone or item.name, "arch": item.digest()}
    if backbone:
        tags["backbone"] = backbone
    if preset:
        tags["preset"] = preset
    return tags


@dataclass
class ConvertedModel:
    """One converted model and its tags (what the sidecar holds)."""

    name: str
    tflite: bytes
    meta: dict[str, Any]

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.meta["tags"])

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """Write ``<name>.tflite`` and ``<name>.json`` into ``out_dir`` (atomically)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        model_path = out_dir / f"{self.name}.tflite"
        side_path = out_dir / f"{self.name}.json"
        _atomic_write(model_path, self.tflite)
        _atomic_write(side_path, (json.dumps(self.meta, indent=1) + "\n").encode())
        return model_path, side_path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SearchError(f"cannot write {path}: {e.strerror}") from e


def convert_preset(name: str, *, weight_bits: int = 8) -> ConvertedModel:
    """A named preset (``search/presets.py``) built and converted, as ``mcuprof sample
    --preset NAME`` does, without writing it."""
    from search.presets import get_preset

    p = get_preset(name)
    return convert_network(p.network(), arch=p.architecture(), preset=p.name,
                           backbone=p.backbone, source=p.source, weight_bits=weight_bits)


def convert_network(network: Network, *, arch: Architecture | None = None,
                    preset: str | None = None, backbone: str | None = None,
                    name: str | None = None, weight_seed: int = 0, representative: Any = None,
                    calibration_seed: int = 0, source: str = "",
                    weight_bits: int = 8) -> ConvertedModel:
    """Build, convert and analyse ``network``; returns the model and its sidecar data.
    ``weight_bits`` 4: conv and fully connected weights made 4-bit (search/int4.py)."""
    name = name or network.name
    model = build_keras(network, seed=weight_seed)
    data = to_int8_tflite(model, representative, seed=calibration_seed)
    if weight_bits == 4:
        from search.int4 import int4_weights

        data = int4_weights(data, name=name)
    elif weight_bits != 8:
        raise ConversionError(f"{name}: weights are 8 or 4 bits, not {weight_bits}", name=name)
    summary = analyze_tflite(data, name=name)
    expected = network.macs()
    if summary["macs"] != expected:  # the description and the converted model must agree
        raise ConversionError(f"{name}: the converted model has {summary['macs']:,} MACs, its "
                              f"description {expected:,}; the converter changed the network",
                              name=name)
    calibration = ("user" if representative is not None else
                   f"random seed {calibration_seed}, {REPRESENTATIVE_SAMPLES} samples")
    meta = sidecar_meta(name, data, network, arch=arch, preset=preset, backbone=backbone,
                        source=source or network.source, weight_bits=weight_bits,
                        calibration=calibration, summary=summary, weight_seed=weight_seed)
    return ConvertedModel(name=name, tflite=data, meta=meta)


def sidecar_meta(name: str, data: bytes, network: Network, *, arch: Architecture | None,
                 preset: str | None = None, backbone: str | None = None, source: str = "",
                 weight_bits: int = 8, calibration: str = "",
                 summary: dict[str, Any] | None = None, file: str | None = None,
                 weight_seed: int | None = None) -> dict[str, Any]:
    """The sidecar every mcuprof model carries (``mcuprof sample``, campaigns, searches):
    what it is, how it was made, and its analysis (``summary``; computed when None)."""
    tf, _ = import_keras()
    return {
        "sidecar_version": SIDECAR_VERSION,
        "name": name,
        "file": file or f"{name}.tflite",
        "space": arch.space if arch is not None else None,
        "preset": preset,
        "id": arch.id if arch is not None else network.digest(),
        "arch": arch.to_dict() if arch is not None else None,
        "tags": model_tags(arch if arch is not None else network, preset=preset,
                           backbone=backbone),
        "network": network.to_dict(),
        "source": source,
        **({"weight_seed": weight_seed} if weight_seed is not None else {}),
        "weight_bits": weight_bits,
        "converter": f"tensorflow {tf.__version__}",
        "calibration": calibration,
        "sha256": hashlib.sha256(data).hexdigest(),
        "tflite_bytes": len(data),
        **(summary if summary is not None else analyze_tflite(data, name=name)),
    }


def convert_architecture(arch: Architecture, *, name: str | None = None, weight_seed: int = 0,
                         representative: Any = None, calibration_seed: int = 0,
                         preset: str | None = None) -> ConvertedModel:
    """Convert one architecture of a search space (named ``<space>-<id>`` by default)."""
    return convert_network(arch.network(name or preset or arch.name), arch=arch,
                           preset=preset, name=name or preset or arch.name,
                           weight_seed=weight_seed, representative=representative,
                           calibration_seed=calibration_seed)


def load_sidecar(path: Path) -> dict[str, Any]:
    """A sidecar's data; raises SearchError when it is missing or not JSON."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SearchError(f"cannot read sidecar {path}: {e}") from e
    if not isinstance(data, dict):
        raise SearchError(f"sidecar {path} is not a JSON object")
    return data


def rebuild(sidecar: dict[str, Any]) -> Architecture | Network:
    """The architecture (space models) or network (other presets) a sidecar describes."""
    if sidecar.get("arch"):
        return Architecture.from_dict(sidecar["arch"])
    return Network.from_dict(sidecar["network"])


# --------------------------------------------------------------------------------------------
# Worker side of ``mcuprof sample`` (one spawned process per job slot, TensorFlow per worker)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One model to convert and write; plain data so it pickles to a spawned worker."""

    name: str
    out_dir: str
    network: dict[str, Any]
    arch: dict[str, Any] | None = None
    preset: str | None = None
    backbone: str | None = None
    source: str = ""
    weight_seed: int = 0
    representative: str | None = None  # path of an .npy file [N, *input_shape]
    force: bool = False
    weight_bits: int = 8  # 4: conv and FC weights re-quantized to INT4 (search/int4.py)


def worker_init() -> None:
    """Per-worker set-up: quiet TensorFlow (its native code logs to file descriptors 1 and 2
    at any time, e.g. CUDA probing on first use, so they point at /dev/null for the
    worker's life; results and errors travel back pickled), one intra-op thread per worker
    (the pool already uses every core), and TensorFlow imported once."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    import_keras()


def existing_result(job: Job) -> dict[str, Any] | None:
    """The sidecar of an earlier, complete conversion of ``job`` in its directory (same
    network, weight seed and calibration, and the ``.tflite`` it describes), or None."""
    out = Path(job.out_dir)
    model_path, side_path = out / f"{job.name}.tflite", out / f"{job.name}.json"
    if job.force or not (model_path.is_file() and side_path.is_file()):
        return None
    try:
        meta = load_sidecar(side_path)
        data = model_path.read_bytes()
    except (SearchError, OSError):
        return None
    if (meta.get("network") == job.network and meta.get("weight_seed") == job.weight_seed
            and meta.get("weight_bits", 8) == job.weight_bits
            and meta.get("calibration") == _calibration_label(job.representative)
            and meta.get("sha256") == hashlib.sha256(data).hexdigest()):
        return {**meta, "reused": True}
    return None


def _calibration_label(representative: str | None) -> str:
    """How a job is calibrated, as its sidecar records it (a user file by name and the
    digest of its content, so a changed file is not mistaken for the old one)."""
    if representative is None:
        return f"random seed 0, {REPRESENTATIVE_SAMPLES} samples"
    path = Path(representative)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError as e:
        raise SearchError(f"cannot read representative data {path}: {e.strerror}") from e
    return f"user: {path.name} (sha256 {digest})"


def run_job(job: Job) -> dict[str, Any]:
    """Convert and write one model (or reuse a complete earlier result); returns its
    sidecar data with ``"reused"`` set accordingly."""
    earlier = existing_result(job)
    if earlier is not None:
        return earlier
    representative = None
    if job.representative:
        try:
            representative = np.load(job.representative)
        except (OSError, ValueError) as e:
            raise SearchError(f"cannot read representative data {job.representative}: "
                              f"{e}") from e
    arch = Architecture.from_dict(job.arch) if job.arch else None
    converted = convert_network(Network.from_dict(job.network), arch=arch, preset=job.preset,
                                backbone=job.backbone, name=job.name,
                                weight_seed=job.weight_seed, representative=representative,
                                source=job.source, weight_bits=job.weight_bits)
    converted.meta["calibration"] = _calibration_label(job.representative)
    converted.write(Path(job.out_dir))
    return {**converted.meta, "reused": False}
