"""Device names → board backends: ``host``, ``virtual:<board>``, ``renode:<board>``,
``pyocd:<board>[:<probe id>]``."""

from __future__ import annotations

from bench_firmware.backends.base import BoardBackend
from bench_firmware.boards import BOARDS
from bench_firmware.errors import McuprofError

BACKENDS = ("host", "virtual", "renode", "pyocd")


def parse_device(device: str) -> tuple[str, str, str | None]:
    """``virtual:nucleo-f446re`` → ("virtual", "nucleo-f446re", None)."""
    if device == "host":
        return "host", "host", None
    parts = device.split(":")
    if len(parts) not in (2, 3) or parts[0] not in BACKENDS:
        raise McuprofError(
            f"device {device!r} is not <backend>:<board>[:<id>] with a backend among "
            f"{', '.join(BACKENDS)} (e.g. virtual:nucleo-f446re), or 'host'"
        )
    backend, board = parts[0], parts[1]
    if board not in BOARDS:
        raise McuprofError(f"unknown board {board!r} in {device!r}; known boards: "
                           f"{', '.join(sorted(BOARDS))}")
    return backend, board, parts[2] if len(parts) == 3 else None


def open_backend(device: str) -> BoardBackend:
    """A backend for ``device``, not yet opened (use it as a context manager)."""
    backend, _board, _ident = parse_device(device)
    if backend == "host":
        from bench_firmware.backends.host import HostBoard

        return HostBoard(device)
    if backend == "virtual":
        from bench_firmware.backends.virtual.backend import VirtualBoard

        return VirtualBoard(device)
    if backend == "renode":
        from bench_firmware.backends.renode.backend import RenodeBoard

        return RenodeBoard(device)
    from bench_firmware.backends.pyocd_backend import PyocdBoard

    return PyocdBoard(device)
