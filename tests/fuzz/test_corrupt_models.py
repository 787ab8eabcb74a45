"""Corrupt ``.tflite`` files are refused with one line, never compiled, never a traceback.

The corpus is made here, seeded: the shipped samples and the zoo, each patched in place at
the byte offsets the flatbuffer accessors report (a scale, a zero point, an operator version,
an options-type tag, a tensor index, a dimension, a buffer reference), plus random byte flips
and truncations. A targeted mutation always writes a value no TensorFlow Lite converter
writes, so the compiler must refuse it; a random flip may land in weight bytes and leave a
valid model, so for those only "success or one error line" is required.

``benchmarks/corrupt_models.py`` runs the same generator with more files and prints figures.
"""

from __future__ import annotations

import random
import struct
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tflite
from click.testing import CliRunner

from bench_firmware.boards import HOST
from bench_firmware.compiler import compile_model
from bench_firmware.errors import McuprofError, ModelError
from bench_firmware.validate import MAX_VERSION
from profiler_client.cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO_ROOT / "bench_firmware" / "samples").glob("*.tflite"))
ZOO_CACHE = REPO_ROOT / "build" / "zoo-cache"


@dataclass
class Corrupt:
    name: str  # source model / family / detail
    data: bytes
    must_reject: bool  # a targeted mutation: no converter writes this


# ---------------------------------------------------------------- flatbuffer patching


def _field(table: Any, slot: int) -> int | None:
    """Absolute byte offset of a scalar field, or None when it is absent (default)."""
    o = table._tab.Offset(slot)
    return table._tab.Pos + o if o else None


def _vector(table: Any, slot: int) -> tuple[int, int] | None:
    """(absolute offset of element 0, length) of a vector field, or None."""
    o = table._tab.Offset(slot)
    if not o:
        return None
    return table._tab.Vector(o), table._tab.VectorLen(o)


def _put(data: bytes, pos: int, fmt: str, value: object) -> bytes:
    buf = bytearray(data)
    struct.pack_into("<" + fmt, buf, pos, value)
    return bytes(buf)


# Slots (4 + 2 * field id) from tensorflow/lite/schema/schema.fbs.
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_QUANT = 4, 6, 8, 12
_Q_SCALE, _Q_ZERO_POINT = 8, 10
_OC_VERSION = 8
_OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS_TYPE = 6, 8, 10
_SG_INPUTS, _SG_OUTPUTS = 6, 8
_CONV_STRIDE_W = 6

BAD_SCALES = [0.0, -0.5, float("inf"), float("nan"), 3e38, 1e-45]
BAD_INT8_ZP = [300, -129, 128, 2**40]


def _targeted(src: str, data: bytes) -> Iterator[Corrupt]:
    """Every invalid-parameter family, once per place it can occur (deterministic)."""
    model = tflite.Model.GetRootAsModel(data, 0)
    sg = model.Subgraphs(0)
    n_tensors = sg.TensorsLength()

    def c(family: str, patched: bytes) -> Corrupt:
        return Corrupt(f"{src}/{family}", patched, True)

    for i in range(n_tensors):
        t = sg.Tensors(i)
        q = t.Quantization()
        vec = _vector(q, _Q_SCALE) if q is not None else None
        zps = _vector(q, _Q_ZERO_POINT) if q is not None else None
        if vec is not None and vec[1]:
            for k, bad in enumerate(BAD_SCALES):
                elem = vec[0] + 4 * (k % vec[1])
                yield c(f"scale/t{i}/{bad!r}", _put(data, elem, "f", bad))
            if vec[1] > 1:  # per-channel: a scale array one short of the zero points
                yield c(f"scale-length/t{i}", _put(data, vec[0] - 4, "I", vec[1] - 1))
        if zps is not None and zps[1]:
            if t.Type() == tflite.TensorType.INT8 and zps[1] == 1:
                for bad in BAD_INT8_ZP:
                    yield c(f"zero-point/t{i}/{bad}", _put(data, zps[0], "q", bad))
            elif t.Type() in (tflite.TensorType.INT32, tflite.TensorType.INT8):
                # int32 biases and per-channel weights are symmetric: zero point 0
                yield c(f"zero-point-symmetric/t{i}", _put(data, zps[0], "q", 3))
        shape = _vector(t, _T_SHAPE)
        if shape is not None and shape[1]:
            for bad in (-1, 0, -(2**31)):
                yield c(f"dim/t{i}/{bad}", _put(data, shape[0] + 4 * (shape[1] - 1), "i", bad))
        buf = _field(t, _T_BUFFER)
        if buf is not None:
            yield c(f"buffer/t{i}", _put(data, buf, "I", model.BuffersLength() + 7))
    names = {getattr(tflite.BuiltinOperator, n): n for n in dir(tflite.BuiltinOperator)
             if not n.startswith("_")}
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        pos = _field(code, _OC_VERSION)
        if pos is None:
            continue  # version 1, the default: the field is not stored
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        for bad in (-1, 0, 99, MAX_VERSION.get(name, 20) + 1):
            yield c(f"version/code{k}/{bad}", _put(data, pos, "i", bad))
    producer: dict[int, int] = {}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        for j in op.OutputsAsNumpy():
            producer[int(j)] = i
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        pos = _field(op, _OP_OPTIONS_TYPE)
        if pos is not None:
            # The tag of another op's table (AddOptions <-> Conv2DOptions): a wrong union type.
            bad = (tflite.BuiltinOptions.AddOptions if data[pos] != tflite.BuiltinOptions.AddOptions
                   else tflite.BuiltinOptions.Conv2DOptions)
            yield c(f"options-type/op{i}", _put(data, pos, "B", bad))
        ins = _vector(op, _OP_INPUTS)
        if ins is not None and ins[1]:
            yield c(f"op-input/op{i}/-2", _put(data, ins[0], "i", -2))
            yield c(f"op-input/op{i}/n", _put(data, ins[0], "i", n_tensors))
            later = [j for j, p in producer.items() if p > i]
            if later:  # read a tensor that a later operator writes
                yield c(f"op-input-order/op{i}", _put(data, ins[0], "i", max(later)))
        outs = _vector(op, _OP_OUTPUTS)
        if outs is not None and outs[1]:
            yield c(f"op-output/op{i}/-1", _put(data, outs[0], "i", -1))
        opts = op.BuiltinOptions()
        if opts is not None and op.BuiltinOptionsType() == tflite.BuiltinOptions.Conv2DOptions:
            table = tflite.Conv2DOptions()
            table.Init(opts.Bytes, opts.Pos)
            spos = _field(table, _CONV_STRIDE_W)
            if spos is not None:
                yield c(f"stride/op{i}/0", _put(data, spos, "i", 0))
    sg_in, sg_out = _vector(sg, _SG_INPUTS), _vector(sg, _SG_OUTPUTS)
    if sg_in is not None and sg_out is not None and sg_in[1] and sg_out[1]:
        in0 = struct.unpack_from("<i", data, sg_in[0])[0]
        yield c("model-input/-1", _put(data, sg_in[0], "i", -1))
        yield c("model-input/n", _put(data, sg_in[0], "i", n_tensors + 3))
        yield c("model-output/-1", _put(data, sg_out[0], "i", -1))
        yield c("model-output-is-input", _put(data, sg_out[0], "i", in0))


def _random(src: str, data: bytes, rng: random.Random, count: int) -> Iterator[Corrupt]:
    """Byte flips, overwritten runs and truncations: any outcome but a traceback is fine."""
    for k in range(count):
        buf = bytearray(data)
        kind = rng.choice(("flip", "flip", "run", "truncate"))
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(8, len(buf))  # keep the 'TFL3' identifier
                buf[pos] ^= 1 << rng.randrange(8)
        elif kind == "run":
            pos = rng.randrange(8, len(buf) - 1)
            run = rng.randint(1, 16)
            buf[pos : pos + run] = bytes(rng.randrange(256) for _ in range(run))[: len(buf) - pos]
        else:
            buf = buf[: rng.randrange(8, len(buf))]
        yield Corrupt(f"{src}/random-{kind}/{k}", bytes(buf), False)


def source_models(with_zoo: bool = True) -> dict[str, bytes]:
    """The shipped samples and, when built, the zoo (name -> bytes)."""
    out = {p.stem: p.read_bytes() for p in SAMPLES}
    if with_zoo and ZOO_CACHE.is_dir():
        from tests.zoo import cache_key

        zoo_dir = ZOO_CACHE / cache_key()
        for p in sorted(zoo_dir.glob("*.tflite")):
            out[f"zoo:{p.stem}"] = p.read_bytes()
    return out


def corpus(seed: int, *, targeted_per_model: int, random_per_model: int,
           with_zoo: bool = True) -> list[Corrupt]:
    """A seeded corpus: up to ``targeted_per_model`` targeted mutations (all families
    represented) and ``random_per_model`` random ones per source model."""
    rng = random.Random(seed)
    files: list[Corrupt] = []
    for src, data in source_models(with_zoo).items():
        targeted = list(_targeted(src, data))
        by_family: dict[str, list[Corrupt]] = {}
        for item in targeted:
            by_family.setdefault(item.name.split("/")[1], []).append(item)
        picked = [rng.choice(group) for group in by_family.values()]  # every family once
        rest = [t for t in targeted if t not in picked]
        rng.shuffle(rest)
        files += (picked + rest)[: max(targeted_per_model, len(picked))]
        files += _random(src, data, rng, random_per_model)
    return files


@dataclass
class Outcome:
    accepted: bool
    error: str | None = None  # the one-line message when refused
    traceback: str | None = None  # set when a raw Python exception escaped


def compile_outcome(data: bytes) -> Outcome:
    """The compiler API on ``data``: a plan, a McuprofError, or anything else (a bug)."""
    try:
        compile_model(data, HOST, name="fuzz.tflite", check_fit=False)
    except McuprofError as e:
        return Outcome(False, str(e))
    except Exception:  # noqa: BLE001 - the point is to catch what should not escape
        return Outcome(False, traceback=traceback.format_exc())
    return Outcome(True)


def cli_outcome(runner: CliRunner, path: Path, args: list[str]) -> Outcome:
    """``mcuprof <args> path`` in-process: exit 0, or exit 2 with one ``error:`` line."""
    result = runner.invoke(cli_main, [*args[:1], str(path), *args[1:]])
    if result.exit_code == 0:
        return Outcome(True)
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return Outcome(False, lines[0])
    detail = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    return Outcome(False, traceback=f"exit {result.exit_code}, stderr {result.stderr!r}\n"
                                    f"{detail}")


CLI_COMMANDS: list[tuple[str, Callable[[Path], list[str]]]] = [
    ("analyze", lambda tmp: ["analyze"]),
    ("compile", lambda tmp: ["compile", "-o", str(tmp / "out.plan"), "--board", "host"]),
]


# ---------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def corpus_files(zoo: dict[str, Path]) -> list[Corrupt]:
    """The test corpus: the samples and the zoo (the ``zoo`` fixture builds it into the cache
    on a fresh checkout, where this folder runs before the integration tests)."""
    return corpus(seed=20261205, targeted_per_model=12, random_per_model=4)


def test_corpus_is_a_few_hundred_files_with_every_family(corpus_files: list[Corrupt]) -> None:
    families = {c.name.split("/")[1] for c in corpus_files if c.must_reject}
    assert {"scale", "zero-point", "version", "options-type", "model-input", "dim",
            "model-output-is-input", "op-input", "op-input-order"} <= families
    assert 200 <= len(corpus_files) <= 1200


def test_compiler_refuses_every_targeted_corruption_without_a_traceback(
        corpus_files: list[Corrupt]) -> None:
    tracebacks, accepted = [], []
    for item in corpus_files:
        out = compile_outcome(item.data)
        if out.traceback:
            tracebacks.append(f"{item.name}:\n{out.traceback}")
        elif item.must_reject and out.accepted:
            accepted.append(item.name)
        elif out.error is not None:
            assert "\n" not in out.error, item.name
    assert not tracebacks, tracebacks[:3]
    assert not accepted, accepted


def test_refusal_names_the_value() -> None:
    data = SAMPLES[0].read_bytes()
    scale = next(c for c in _targeted("s", data) if c.name.startswith("s/scale/")
                 and c.name.endswith("/0.0"))
    with pytest.raises(ModelError, match=r"tensor \d+ .*scale 0\.0"):
        compile_model(scale.data, HOST)
    version = next(c for c in _targeted("s", data) if c.name.endswith("/99"))
    with pytest.raises(ModelError, match="version 99"):
        compile_model(version.data, HOST)


def test_cli_gives_one_error_line_and_status_2(tmp_path: Path,
                                                corpus_files: list[Corrupt]) -> None:
    runner = CliRunner()
    items = corpus_files[::3]  # every third file: the CLI adds no logic of its own per file
    bad = []
    for k, item in enumerate(items):
        path = tmp_path / f"m{k}.tflite"
        path.write_bytes(item.data)
        for cmd, args in CLI_COMMANDS:
            out = cli_outcome(runner, path, args(tmp_path))
            if out.traceback or (item.must_reject and out.accepted):
                bad.append(f"{cmd} {item.name}: {out.traceback or 'accepted'}")
    assert not bad, bad[:3]
