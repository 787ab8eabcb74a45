"""The compiled hot paths of the cycle model (``_fast.c``): built with the host C compiler on
first use, loaded with ctypes.

``MCUPROF_TWIN_MODEL`` (``LocalSettings.twin_model``) picks the implementation: ``auto`` (the
default: C when a compiler built it, else Python), ``c`` (C or an error saying why not) or
``python`` (the reference implementation). Both give identical counts
(``tests/integration/test_fast_model.py``).

The library is kept under the build folder (``MCUPROF_BUILD_DIR``, ``twin/``), named by the hash
of its source and flags, so a checkout builds it once (about a second).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_firmware.build import build_root
from bench_firmware.errors import BoardError
from bench_firmware.settings import local_settings

SOURCE = Path(__file__).with_name("_fast.c")
IMPLEMENTATIONS = ("auto", "c", "python")
_ENV = "MCUPROF_TWIN_MODEL"
_CFLAGS = ("-O2", "-shared", "-fPIC", "-std=c99")
_MISS_CFUNC: Any = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64,
                                    ctypes.c_uint32)

_loaded: dict[str, Any] = {}  # "lib" -> CDLL, "error" -> why it could not be built


def requested(implementation: str | None = None) -> str:
    """The implementation asked for: the argument, else ``MCUPROF_TWIN_MODEL``, else auto."""
    choice = (implementation or local_settings().twin_model).strip().lower()
    if choice not in IMPLEMENTATIONS:
        raise BoardError(f"{_ENV}={choice!r} is not one of {', '.join(IMPLEMENTATIONS)}")
    return choice


def _build() -> Path:
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(_CFLAGS).encode()).hexdigest()[:16]
    target = build_root() / "twin" / f"twin-{digest}.so"
    if target.is_file():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise BoardError("no host C compiler (cc) for the fast cycle model; install one (e.g. "
                         f"gcc) or set {_ENV}=python")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run([compiler, *_CFLAGS, "-o", str(built), str(SOURCE)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BoardError(f"building the fast cycle model with {compiler} failed: "
                             f"{result.stderr.strip()[:2000]}; set {_ENV}=python to use the "
                             "Python model")
        os.replace(built, target)  # atomic: concurrent builders write the same bytes
    return target


def library() -> Any:
    """The loaded library (argument types declared); BoardError when it cannot be built."""
    if "lib" in _loaded:
        return _loaded["lib"]
    if "error" in _loaded:
        raise _loaded["error"]
    try:
        lib = ctypes.CDLL(str(_build()))
    except (OSError, subprocess.SubprocessError) as exc:
        error = BoardError(f"the fast cycle model could not be built or loaded ({exc}); set "
                           f"{_ENV}=python to use the Python model")
        _loaded["error"] = error
        raise error from exc
    except BoardError as exc:
        _loaded["error"] = exc
        raise
    u32, u64, i32, i64, vp = (ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32, ctypes.c_int64,
                              ctypes.c_void_p)
    lib.fast_create.restype = vp
    lib.fast_create.argtypes = [vp, vp, vp, ctypes.c_int, u32, u32, u32, u32, u32, u32, u64]
    lib.fast_destroy.argtypes = [vp]
    lib.fast_destroy.restype = None
    lib.fast_new_record.argtypes = [vp, i64]
    lib.fast_new_record.restype = i64
    lib.fast_new_plan.argtypes = [vp, ctypes.c_int, u32, ctypes.POINTER(u64),
                                  ctypes.POINTER(u64)]
    lib.fast_new_plan.restype = i64
    lib.fast_set_edge.argtypes = [vp, u32, u64, u32, u32, i32, ctypes.c_int, ctypes.c_int, u32,
                                  ctypes.POINTER(u64), ctypes.POINTER(ctypes.c_uint8)]
    lib.fast_set_edge.restype = ctypes.c_int
    lib.fast_set_miss.argtypes = [vp, _MISS_CFUNC]
    lib.fast_set_miss.restype = None
    _loaded["lib"] = lib
    return lib


def available() -> bool:
    """Whether the C implementation can be used here."""
    try:
        library()
    except BoardError:
        return False
    return True


def miss_callback(function: Any) -> Any:
    """Wrap ``function(source record, address, size) -> 0 | -1`` for ``fast_create``."""
    return _MISS_CFUNC(function)


def pointer(lib: Any, name: str) -> int:
    """The address of the library's function ``name`` (for ``uc_hook_add``)."""
    value = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    assert value is not None
    return int(value)
