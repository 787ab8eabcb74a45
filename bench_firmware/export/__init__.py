"""``mcuprof export``: the plan as a C array and the runtime as a small C library.

``export_runtime(model, board, out_dir)`` writes, for one model and one board::

    DIR/
      Makefile              arm-none-eabi-gcc with the bench firmware's flags: the example
                            (build/example.elf, .hex) and build/libmcuprof.a
      linker.ld             the board's memory map; the plan in the bench firmware's model region
      main.c                example: board set-up, inference runs, cycles and output on the UART
      model.h, model.c      the plan as ``const uint8_t mp_model_plan[]`` (section .mp_plan,
                            aligned), its arena size, the example input (mcuprof run's default)
      mcuprof/include/      mcuprof.h (the public API, the one header an application includes)
                            and the runtime's own headers
      mcuprof/src/          the bench firmware's runtime and kernels, copied unchanged, and
                            mcuprof.c, the public API over them
      board/                the bench firmware's board support (start-up, clocks, flash wait
                            states, caches, UART, DWT) for the board, copied unchanged
      README.md

Nothing is forked: the runtime, kernel and board-support sources are copies of
``bench_firmware/firmware``, so the example runs the code ``mcuprof run`` measured. The
Makefile links the runtime and kernels first, in the bench firmware's order, so they land at
the same flash addresses, and the linker script puts the plan where the bench firmware keeps
it: the flash caches meet both as they did when mcuprof profiled them.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench_firmware.boards import HOST, Board
from bench_firmware.build import (
    FIRMWARE_DIR,
    FIRMWARE_FLAGS,
    FIRMWARE_SOURCE_DIRS,
    INCLUDE_DIR,
    board_source_dirs,
    core_flags,
)
from bench_firmware.compiler import Plan, compile_model
from bench_firmware.errors import McuprofError

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The runtime's folders under bench_firmware/firmware, in the order the bench firmware links
# them: its sources less the serial protocol, which comes after them.
RUNTIME_DIRS = tuple(d for d in FIRMWARE_SOURCE_DIRS if d != "protocol")
# Board support the example does not need: the bench firmware's model region and arena
# symbols (the export has its own), and newlib's system calls (the example prints without
# stdio).
BOARD_SKIP = frozenset({"board_memory.c", "newlib_stubs.c", "sections.ld", "linker.ld"})
# The plan's alignment in RAM or flash when it is not at the model region: MP_PLAN_ALIGN
# (mp_plan.h), rounded up to a flash-cache line.
PLAN_ALIGN = 32
BYTES_PER_LINE = 16  # of the C arrays in model.c
DTYPE_BYTES = {"int8": 1, "float32": 4}
PLACEHOLDER = re.compile(r"@[A-Z_]+@")


@dataclass(frozen=True)
class ExportResult:
    """What ``export_runtime`` wrote."""

    out_dir: Path
    board: str
    model_id: str
    plan_bytes: int
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    files: tuple[Path, ...]


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise McuprofError(f"{out_dir} exists and is not a directory; choose another -o")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise McuprofError(f"{out_dir} is not empty; choose an empty or new directory, or "
                               f"pass --force to replace what mcuprof export wrote there")
        for name in ("Makefile", "linker.ld", "main.c", "model.h", "model.c", "README.md"):
            (out_dir / name).unlink(missing_ok=True)
        for name in ("mcuprof", "board", "build"):
            shutil.rmtree(out_dir / name, ignore_errors=True)


def _c_bytes(data: bytes, indent: str = "    ") -> str:
    lines = []
    for i in range(0, len(data), BYTES_PER_LINE):
        chunk = data[i : i + BYTES_PER_LINE]
        lines.append(indent + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    return "\n".join(lines)


def _model_h(plan: Plan, input_bytes: int, output_bytes: int) -> str:
    b = plan.board
    return f"""/* Written by `mcuprof export`: the plan of model {plan.model_id} for {b.name}. */
#ifndef MODEL_H
#define MODEL_H

#include <stdint.h>

#define MP_MODEL_ID "{plan.model_id}"
#define MP_MODEL_BOARD "{b.name}"
#define MP_MODEL_PLAN_BYTES {plan.plan_bytes}u
/* Activations and kernel scratch, as the memory planner laid them out: the arena to pass to
 * mp_model_init() needs this many bytes. */
#define MP_MODEL_ARENA_BYTES {plan.arena_bytes}u
#define MP_MODEL_INPUT_BYTES {input_bytes}u   /* {plan.input_dtype} {list(plan.input_shape)} */
#define MP_MODEL_OUTPUT_BYTES {output_bytes}u  /* {plan.output_dtype} {list(plan.output_shape)} */
#define MP_MODEL_OUTPUT_INT8 {1 if plan.output_dtype == "int8" else 0}

extern const uint8_t mp_model_plan[MP_MODEL_PLAN_BYTES];
/* The input `mcuprof run` uses when given none (or the --input of `mcuprof export`). */
extern const uint8_t mp_example_input[MP_MODEL_INPUT_BYTES];

#endif /* MODEL_H */
"""


def _model_c(plan: Plan, example_input: bytes) -> str:
    b = plan.board
    return f"""/* Written by `mcuprof export`: the plan of model {plan.model_id} for {b.name}
 * ({len(plan.layers)} operators, {plan.macs:,} MACs) and an example input.
 *
 * The plan stays in flash, as on the bench: weights are read where they lie. Section
 * .mp_plan is placed by linker.ld in the model region, where the bench firmware reads it;
 * without that linker script it lands with the other read-only data, {PLAN_ALIGN}-byte
 * aligned (the runtime needs 8). */
#include "model.h"

const uint8_t mp_model_plan[MP_MODEL_PLAN_BYTES]
    __attribute__((section(".mp_plan"), aligned({PLAN_ALIGN}))) = {{
{_c_bytes(plan.data)}
}};

const uint8_t mp_example_input[MP_MODEL_INPUT_BYTES] __attribute__((aligned(4))) = {{
{_c_bytes(example_input)}
}};
"""


def _tensor_bytes(shape: tuple[int, ...], dtype: str) -> int:
    return math.prod(shape) * DTYPE_BYTES[dtype]


def _substitute(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    left = PLACEHOLDER.search(template)
    if left is not None:
        raise McuprofError(f"export template placeholder {left.group(0)} has no value")
    return template


def _copy(src: Path, dst: Path, written: list[Path]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    written.append(dst)


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    written.append(path)


def export_runtime(model: bytes, board: Board, out_dir: Path, *, name: str = "model",
                   input_path: Path | None = None, kernels: str = "dsp",
                   force: bool = False) -> ExportResult:
    """Write the plan of ``model`` for ``board`` and the runtime into ``out_dir``.

    main.c runs the input in ``input_path`` (.npy), by default the seeded random input
    ``mcuprof run`` uses without ``--input``, with the ``kernels`` path (``make KERNELS=``
    overrides it). Raises ``ModelError`` for a model that cannot be compiled or does not fit
    the board, ``McuprofError`` for the host or a directory that is not empty (unless
    ``force``).
    """
    from bench_firmware.runner import make_input

    if board.code == HOST.code or not board.gcc_cpu_flags:
        raise McuprofError(f"{board.name} is not a board to export for; choose one of the "
                           f"Cortex-M boards (mcuprof export --board nucleo-f446re ...)")
    if kernels not in ("dsp", "ref"):
        raise McuprofError(f"unknown kernel path {kernels!r}; use dsp or ref")
    plan = compile_model(model, board, name=name, check_fit=True)
    example_input = make_input(plan, input_path).tobytes()
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    # The runtime: headers, runtime and kernel sources, unchanged.
    for header in sorted(INCLUDE_DIR.glob("*.h")):
        _copy(header, out_dir / "mcuprof" / "include" / header.name, written)
    runtime_srcs: list[str] = []
    for folder in RUNTIME_DIRS:
        for src in sorted((FIRMWARE_DIR / folder).rglob("*.c")):
            rel = Path("mcuprof") / "src" / src.relative_to(FIRMWARE_DIR)
            _copy(src, out_dir / rel, written)
            runtime_srcs.append(rel.as_posix())
    _copy(TEMPLATES / "mcuprof.h", out_dir / "mcuprof" / "include" / "mcuprof.h", written)
    _copy(TEMPLATES / "mcuprof.c", out_dir / "mcuprof" / "src" / "mcuprof.c", written)

    # Board support: common, the MCU family and the board, as the bench firmware builds it.
    board_srcs: list[str] = []
    board_includes: list[str] = []
    for support in board_source_dirs(board):
        rel_dir = Path("board") / support.name
        board_includes.append(f"-I{rel_dir.as_posix()}")
        for src in sorted(p for p in support.rglob("*") if p.is_file()):
            if src.name in BOARD_SKIP:
                continue
            rel = rel_dir / src.relative_to(support)
            _copy(src, out_dir / rel, written)
            if src.suffix == ".c":
                board_srcs.append(rel.as_posix())

    input_bytes = _tensor_bytes(plan.input_shape, plan.input_dtype)
    output_bytes = _tensor_bytes(plan.output_shape, plan.output_dtype)
    if len(example_input) != input_bytes:
        raise McuprofError(f"the example input has {len(example_input)} bytes; the model takes "
                           f"{input_bytes} ({plan.input_dtype} {list(plan.input_shape)})")
    _write(out_dir / "model.h", _model_h(plan, input_bytes, output_bytes), written)
    _write(out_dir / "model.c", _model_c(plan, example_input), written)
    _copy(TEMPLATES / "main.c", out_dir / "main.c", written)

    values = {
        "BOARD": board.name,
        "MCU": board.mcu,
        "CLOCK_MHZ": f"{board.clock_mhz:g}",
        "BOARD_CODE": str(board.code),
        "KERNELS": kernels,
        "CPU_FLAGS": " ".join([*board.gcc_cpu_flags, *core_flags(board)]),
        "CFLAGS": " ".join([*FIRMWARE_FLAGS, "-O2"]),
        "BOARD_INCLUDES": " ".join(board_includes),
        "RUNTIME_SRCS": " \\\n                ".join(runtime_srcs),
        "BOARD_SRCS": " \\\n                ".join(board_srcs),
        "FLASH_BASE": f"0x{board.flash_base:08X}",
        "FLASH_BYTES": f"0x{board.model_region_base - board.flash_base:08X}",
        "MODEL_BASE": f"0x{board.model_region_base:08X}",
        "MODEL_BYTES": f"0x{board.model_region_bytes:08X}",
        "RAM_BASE": f"0x{board.sram_base:08X}",
        "RAM_BYTES": f"0x{board.sram_bytes:08X}",
        "MODEL_ID": plan.model_id,
        "PLAN_BYTES": f"{plan.plan_bytes:,}",
        "ARENA_BYTES": f"{plan.arena_bytes:,}",
    }
    for template in ("Makefile", "linker.ld", "README.md"):
        text = _substitute((TEMPLATES / template).read_text(), values)
        _write(out_dir / template, text, written)

    return ExportResult(out_dir=out_dir, board=board.name, model_id=plan.model_id,
                        plan_bytes=plan.plan_bytes, arena_bytes=plan.arena_bytes,
                        input_bytes=input_bytes, output_bytes=output_bytes,
                        files=tuple(written))
