"""The zoo compiled for a board (kept out of ``tests/zoo.py``, whose sources key the zoo's
cache)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bench_firmware.boards import Board
from bench_firmware.compiler import Plan, compile_model
from bench_firmware.errors import DoesNotFitError
from tests.zoo import ZOO_NAMES


def zoo_plans(zoo: dict[str, Path], board: Board) -> Iterator[tuple[str, bytes, Plan]]:
    """(name, model bytes, plan) of every zoo model that fits ``board``, in zoo order; those
    that do not fit are skipped."""
    for name in ZOO_NAMES:
        model = zoo[name].read_bytes()
        try:
            plan = compile_model(model, board, name=name)
        except DoesNotFitError:
            continue
        yield name, model, plan
