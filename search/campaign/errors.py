"""The campaign's errors (in the one ``McuprofError`` tree)."""

from __future__ import annotations

from bench_firmware.errors import McuprofError


class CampaignError(McuprofError):
    """A campaign could not start or go on (bad options, a foreign campaign directory)."""


class ServerNotFoundError(CampaignError):
    """No mcuprof server answered; the message says how to start one."""


class CampaignTimeoutError(CampaignError):
    """Jobs were still running when the campaign stopped waiting for them."""
