"""Run plans on the host build of the runtime (a shared library, through ctypes).

This is the fast path for tests: the same C sources as the firmware, compiled with the
system C compiler; the DSP kernel path compiles against portable C versions of the ACLE
intrinsics, so both paths run here. The host has no cycle counter: outputs only.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench_firmware.errors import BoardError

KERNEL_PATHS = {"ref": 0, "dsp": 1}


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    from bench_firmware.build import build_host

    path: Path = build_host(kind="lib")
    lib = ctypes.CDLL(str(path))
    lib.mp_host_run.restype = ctypes.c_int
    lib.mp_host_run.argtypes = [
        ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint32,
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32,
    ]
    lib.mp_host_status_str.restype = ctypes.c_char_p
    lib.mp_host_status_str.argtypes = [ctypes.c_int]
    return lib


def run_plan(plan: bytes, x: np.ndarray, *, output_bytes: int, kernels: str = "dsp",
             arena_bytes: int | None = None) -> bytes:
    """Run ``plan`` once on input ``x`` (its raw bytes are used) and return the output bytes."""
    lib = _library()
    from bench_firmware import plan_format as pf

    header = pf.HEADER.unpack(plan)
    arena = arena_bytes or int(header["arena_bytes"]) or 16  # type: ignore[call-overload]
    raw = np.ascontiguousarray(x).tobytes()
    out = ctypes.create_string_buffer(output_bytes)
    status = lib.mp_host_run(plan, len(plan), raw, len(raw), out, output_bytes,
                             KERNEL_PATHS[kernels], arena)
    if status != 0:
        reason = lib.mp_host_status_str(status).decode()
        raise BoardError(f"the host runtime failed: {reason} (status {status})")
    return out.raw
