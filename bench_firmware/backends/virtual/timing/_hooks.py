"""Unicorn hooks with the least Python between the emulator and the callback.

The binding's ``Uc.hook_add`` wraps every callback in two Python frames (an exception guard and
an argument adapter). Measured on the 2-core development machine with unicorn 2.1.4 (see
``benchmarks/cycle_model_speed.py``), an empty block hook costs about 0.48 µs per callback that
way and 0.21 µs when the ctypes function pointer is registered with ``uc_hook_add`` directly,
which is what this module does. The callbacks receive the raw engine handle where
``hook_add`` would pass the ``Uc`` object; ours ignore that argument, so when the binding's
internals are not where unicorn 2.1 keeps them we fall back to ``hook_add`` and lose only speed.

The function types declare only the leading parameters the callbacks use (engine, address and
size for code and block hooks; engine, access, address and size for memory hooks): ctypes
converts every declared argument to a Python object, and the two it would convert only to drop
them cost about 10 ns per block callback and 25-30 ns per memory callback (measured on the same
machine with empty callbacks on a three-instruction loop). Unicorn still passes all of them
(``uc_cb_hookcode_t``, ``uc_cb_hookmem_t`` in ``unicorn.h``); on the C ABIs it runs on (System V
x86-64, AAPCS64, Windows x64) arguments go in registers and the caller owns them, so a callee
that declares fewer trailing parameters reads the ones it declares correctly. Through the
binding's ``hook_add`` (which passes them all) the callbacks are called through an adapter that
drops the rest.

A raw callback has no exception guard: ctypes would print the exception and carry on. Every
callback of the cycle model therefore catches its own exceptions and calls ``fail``, which
records the exception where ``Uc.emu_start`` re-raises it and stops the emulation.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, Uc, UcError

try:  # unicorn 2.1.x layout
    from unicorn.unicorn_py3 import unicorn as _binding

    _UCLIB: Any = _binding.uclib
    _HOOK_H: Any = _binding.uc_hook_h
    # The leading parameters of uc_cb_hookcode_t (engine, address, size) and uc_cb_hookmem_t
    # (engine, access type, address, size); see the module docstring. The engine handle, which
    # the callbacks ignore, is read as a bool: ctypes makes a new int object for a pointer on
    # every call (about 10 ns), and returns one of two shared objects for a bool.
    _ENGINE = ctypes.c_bool
    _CODE_CFUNC: Any = ctypes.CFUNCTYPE(None, _ENGINE, ctypes.c_uint64, ctypes.c_uint32)
    _MEM_CFUNC: Any = ctypes.CFUNCTYPE(None, _ENGINE, ctypes.c_int, ctypes.c_uint64, ctypes.c_int)
except (ImportError, AttributeError):  # pragma: no cover - other binding versions
    _UCLIB = None


class Hooks:
    """The hooks one model installed on one ``Uc``; keeps the function pointers alive."""

    def __init__(self, uc: Uc) -> None:
        self._uc = uc
        self._handles: list[tuple[int, bool]] = []  # (handle, raw)
        self._keep: list[object] = []
        self._uch = getattr(uc, "_uch", None)

    def _add(self, htype: int, cfunc: Any, callback: Callable[..., Any], begin: int,
             end: int, arity: int) -> int:
        """Register ``callback``, which takes the hook type's first ``arity`` parameters."""
        if _UCLIB is not None and self._uch is not None:
            pointer = cfunc(callback)
            handle = _HOOK_H()
            status = _UCLIB.uc_hook_add(self._uch, ctypes.byref(handle), htype, pointer, None,
                                        ctypes.c_uint64(begin), ctypes.c_uint64(end))
            if status != 0:
                raise UcError(status)
            self._keep.append(pointer)
            self._handles.append((handle.value, True))
            return int(handle.value)

        def adapter(*args: Any) -> None:
            callback(*args[:arity])

        value = int(self._uc.hook_add(htype, adapter, begin=begin, end=end))
        self._handles.append((value, False))
        return value

    @property
    def raw(self) -> bool:
        """Whether C function pointers can be registered (``c_hook``)."""
        return _UCLIB is not None and self._uch is not None

    def c_hook(self, htype: int, function: int, user_data: int, begin: int, end: int) -> int:
        """Register the C function at address ``function`` (a ``uc_cb_hook*_t``) with
        ``user_data``; only when ``raw``."""
        handle = _HOOK_H()
        status = _UCLIB.uc_hook_add(self._uch, ctypes.byref(handle), htype,
                                    ctypes.c_void_p(function), ctypes.c_void_p(user_data),
                                    ctypes.c_uint64(begin), ctypes.c_uint64(end))
        if status != 0:
            raise UcError(status)
        self._handles.append((handle.value, True))
        return int(handle.value)

    def block(self, callback: Callable[[Any, int, int], None]) -> int:
        """``callback(_, address, size)`` at the start of every translated block."""
        return self._add(UC_HOOK_BLOCK, _CODE_CFUNC if _UCLIB else None, callback, 1, 0, 3)

    def code(self, callback: Callable[[Any, int, int], None], address: int) -> int:
        """``callback(_, address, size)`` before the instruction at ``address`` runs."""
        return self._add(UC_HOOK_CODE, _CODE_CFUNC if _UCLIB else None, callback, address,
                         address, 3)

    def mem_read(self, callback: Callable[[Any, int, int, int], None], begin: int,
                 end: int) -> int:
        """``callback(_, access, address, size)`` for data reads in [begin, end]."""
        return self._add(UC_HOOK_MEM_READ, _MEM_CFUNC if _UCLIB else None, callback, begin, end,
                         4)

    def remove_all(self) -> None:
        """Delete every hook this object added."""
        for value, raw in self._handles:
            if raw:
                _UCLIB.uc_hook_del(self._uch, _HOOK_H(value))
            else:
                self._uc.hook_del(value)
        self._handles.clear()
        self._keep.clear()

    def fail(self, exc: BaseException) -> None:
        """Stop the emulation and have ``emu_start`` raise ``exc``."""
        if getattr(self._uc, "_hook_exception", None) is None:
            try:
                self._uc._hook_exception = exc  # type: ignore[attr-defined]
            except AttributeError:  # pragma: no cover
                pass
        self._uc.emu_stop()
