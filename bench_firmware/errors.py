"""The one exception tree of mcuprof.

Every error a user can see is an ``McuprofError``. Its message says what was wrong and what
to do; the fields carry the numbers so callers (the service, the CLI) can report them.
Third-party errors are wrapped where they enter (``raise ModelError(...) from e``).
The job queue's errors build on this tree in ``profiler_client.errors`` (the queue is a
server and client concern, not a firmware one).
"""

from __future__ import annotations


class McuprofError(Exception):
    """Something went wrong in mcuprof."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ModelError(McuprofError):
    """The model cannot be compiled for this board."""


class NotInt8Error(ModelError):
    """The model is not a fully int8-quantized model."""

    def __init__(self, message: str, tensor: str | None = None, dtype: str | None = None) -> None:
        super().__init__(message)
        self.tensor = tensor
        self.dtype = dtype


class UnsupportedOpError(ModelError):
    """The model uses an operator the bench firmware does not implement."""

    def __init__(self, message: str, op: str, index: int | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.index = index


class CorruptModelError(ModelError):
    """The file is not a readable .tflite flatbuffer."""


class DoesNotFitError(ModelError):
    """The model's plan or arena does not fit the board."""

    def __init__(self, message: str, what: str, needed: int, available: int) -> None:
        super().__init__(message)
        self.what = what
        self.needed = needed
        self.available = available


class PlanError(McuprofError):
    """A plan file is malformed, corrupt, or made for another board."""


class BuildError(McuprofError):
    """The firmware (cross or host) build failed."""


class BoardError(McuprofError):
    """A board (physical, virtual or host) failed: probe missing, flash failed, timeout,
    firmware error."""


class SerialTimeoutError(BoardError):
    """The board stopped answering on its serial port."""


class FirmwareError(BoardError):
    """The firmware answered with an error (``e-[...]``)."""


class ProtocolError(McuprofError):
    """A line on the serial port did not follow the protocol."""

