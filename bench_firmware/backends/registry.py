"""Device names → board backends: ``host``, ``virtual:<board>``, ``renode:<board>``,
``pyocd:<board>[:<probe id>]``."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class DeviceClass:
    """``<backend>:<board>`` (or ``host``) with its parts: what a job targets; any board of
    the class may run it."""

    name: str
    backend: str
    board: str


class DeviceClassError(McuprofError):
    """A name that is not a device class (unknown backend or board, or one board's full
    name); the message lists the known ones."""


def known_devices_hint() -> str:
    """The backends and boards a device class may name, for error messages."""
    return (f"backends: {', '.join(b for b in BACKENDS if b != 'host')}; boards: "
            f"{', '.join(sorted(BOARDS))} (e.g. virtual:nucleo-f446re), or host")


def unknown_device_message(kind: str, name: str, e: McuprofError) -> str:
    """Why ``name`` (a ``kind``: "device" or "device class") is not one, and what is known."""
    parts = name.split(":")
    if parts[0] not in BACKENDS:
        reason = f"unknown backend {parts[0]!r}"
    elif len(parts) > 1 and parts[1] not in BOARDS:
        reason = f"unknown board {parts[1]!r}"
    else:
        reason = "too many ':'" if len(parts) > 3 else str(e)
    return (f"unknown {kind} {name!r} ({reason}); a {kind} is "
            f"<backend>:<board>{'[:<id>]' if kind == 'device' else ''} "
            f"with {known_devices_hint()}")


def parse_device_class(name: str) -> DeviceClass:
    """``virtual:nucleo-f446re`` → DeviceClass; raises :class:`DeviceClassError` for an
    unknown backend or board and for a full device name with a board id."""
    try:
        backend, board, ident = parse_device(name)
    except McuprofError as e:
        raise DeviceClassError(unknown_device_message("device class", name, e)) from e
    if ident is not None:
        raise DeviceClassError(
            f"{name!r} names one board; jobs target a device class <backend>:<board> "
            f"(here {backend}:{board}) and any board of that class runs them")
    return DeviceClass(name, backend, board)
