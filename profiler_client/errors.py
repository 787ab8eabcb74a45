"""Errors of the job queue, shared by the REST client and the service.

They extend the one exception tree rooted in ``bench_firmware.errors.McuprofError``.
"""

from __future__ import annotations

from bench_firmware.errors import McuprofError


class QueueError(McuprofError):
    """A job-queue operation failed."""
