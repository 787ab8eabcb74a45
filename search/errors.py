"""The errors of ``search/``: branches of mcuprof's one exception tree
(``bench_firmware.errors.McuprofError``), so the CLI reports them as one clear line."""

from __future__ import annotations

from bench_firmware.errors import McuprofError, ModelError


class SearchError(McuprofError):
    """A search space, architecture or preset request was wrong."""


class UnknownNameError(SearchError):
    """An unknown search space or preset name; the message lists the valid ones."""

    def __init__(self, what: str, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown {what} {name!r}; valid {what}s: {', '.join(valid)}")
        self.what = what
        self.name = name
        self.valid = valid


class InvalidArchitectureError(SearchError):
    """An architecture does not belong to its search space (missing, extra or bad choices)."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class ConversionError(ModelError):
    """TensorFlow could not build or convert a network to an int8 ``.tflite``."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name
