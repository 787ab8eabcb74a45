"""Errors of the latency-model fitting code, in mcuprof's one exception tree."""

from __future__ import annotations

from bench_firmware.errors import McuprofError


class FitError(McuprofError):
    """A latency model could not be fitted from these measurements."""


class InsufficientDataError(FitError):
    """Too few measurements to fit and cross-validate a latency model."""

    def __init__(self, message: str, *, n: int, needed: int) -> None:
        super().__init__(message)
        self.n = n
        self.needed = needed
