"""Bad input gets an error that names what broke and the number that broke it."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest

from bench_firmware.boards import BOARDS, HOST, get_board
from bench_firmware.compiler import compile_model, read_plan
from bench_firmware.errors import (
    CorruptModelError,
    DoesNotFitError,
    NotInt8Error,
    PlanError,
    UnsupportedOpError,
)
from tests.tflite_convert import import_tf, to_float_tflite, to_int8_tflite

pytestmark = pytest.mark.slow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _convert(build: Callable[[], object], shape: tuple[int, ...], *, int8: bool = True) -> bytes:
    tf, _ = import_tf()
    tf.keras.utils.set_random_seed(0)
    model = build()
    if not int8:
        return to_float_tflite(model)

    def rep():  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.uniform(-1, 1, size=(1, *shape)).astype(np.float32)]

    return to_int8_tflite(model, rep)


def _keras():  # type: ignore[no-untyped-def]
    import tensorflow as tf

    return tf.keras


@pytest.fixture(scope="module")
def small_int8() -> bytes:
    k = _keras()
    return _convert(lambda: k.Sequential([k.Input((8, 8, 3), batch_size=1),
                                          k.layers.Conv2D(4, 3, activation="relu")]), (8, 8, 3))


def test_float_model_is_refused_with_the_recipe() -> None:
    k = _keras()
    model = _convert(lambda: k.Sequential([k.Input((8, 8, 3), batch_size=1),
                                           k.layers.Conv2D(4, 3)]), (8, 8, 3), int8=False)
    with pytest.raises(NotInt8Error, match="float model.*float32.*TFLITE_BUILTINS_INT8"):
        compile_model(model, HOST)


def test_unsupported_op_is_named() -> None:
    k = _keras()
    model = _convert(lambda: k.Sequential([k.Input((16,), batch_size=1), k.layers.Dense(8),
                                           k.layers.Activation("tanh")]), (16,))
    with pytest.raises(UnsupportedOpError, match=r"operator \d+ is TANH") as info:
        compile_model(model, HOST)
    assert info.value.op == "TANH"


def test_dynamic_batch_shape_ops_get_a_hint() -> None:
    k = _keras()
    model = _convert(lambda: k.Sequential([k.Input((4, 4, 2)), k.layers.Flatten(),
                                           k.layers.Dense(3)]), (4, 4, 2))
    with pytest.raises(UnsupportedOpError, match="batch_size=1"):
        compile_model(model, HOST)


def test_truncated_and_foreign_files(small_int8: bytes) -> None:
    with pytest.raises(CorruptModelError, match="not a TensorFlow Lite flatbuffer"):
        compile_model(b"\x89PNG\r\n\x1a\n" + bytes(100), HOST)
    with pytest.raises(CorruptModelError):
        compile_model(small_int8[: len(small_int8) // 3], HOST)


def test_arena_too_large_for_the_board() -> None:
    k = _keras()
    model = _convert(lambda: k.Sequential([k.Input((96, 96, 8), batch_size=1),
                                           k.layers.Conv2D(16, 3, padding="same")]), (96, 96, 8))
    board = get_board("nucleo-f446re")
    with pytest.raises(DoesNotFitError, match=r"needs a \d+-byte tensor arena") as info:
        compile_model(model, board)
    assert info.value.what == "arena" and info.value.available == board.arena_capacity
    assert info.value.needed > board.arena_capacity
    compile_model(model, get_board("nucleo-l4r5zi"))  # 640 KB of SRAM: fits


def test_plan_too_large_for_the_model_region() -> None:
    k = _keras()
    # 490,000 int8 weights: more than the F446RE's 464 KiB model region, within the F746ZG's.
    model = _convert(lambda: k.Sequential([k.Input((700,), batch_size=1), k.layers.Dense(700)]),
                     (700,))
    board = get_board("nucleo-f446re")
    with pytest.raises(DoesNotFitError, match="model region") as info:
        compile_model(model, board)
    assert info.value.what == "plan" and info.value.needed > board.model_region_bytes
    compile_model(model, get_board("nucleo-f746zg"))


def test_plan_checks_catch_corruption_and_wrong_board(small_int8: bytes) -> None:
    f446 = BOARDS["nucleo-f446re"]
    plan = compile_model(small_int8, f446).data
    assert read_plan(plan, f446).model_id == plan[16:24].hex()
    flipped = bytearray(plan)
    flipped[-3] ^= 0x40
    with pytest.raises(PlanError, match="CRC mismatch"):
        read_plan(bytes(flipped))
    with pytest.raises(PlanError, match="truncated"):
        read_plan(plan[:-8])
    with pytest.raises(PlanError, match="compiled for nucleo-f446re, not nucleo-f746zg"):
        read_plan(plan, BOARDS["nucleo-f746zg"])
