"""The Renode backend: the boards' own firmware images in Renode, where Renode is installed.

``RenodeBoard("renode:<board>")`` implements
:class:`bench_firmware.backends.base.BoardBackend`; its cycle counts are Renode's
instruction-based estimates (``cycle_source == "renode-estimate"``). How to install
Renode and what the numbers mean: docs/renode.md.
"""

from __future__ import annotations

from bench_firmware.backends.renode.backend import (
    INSTALL_HINT,
    RENODE_ENV,
    RenodeBoard,
    RenodeRunResult,
    find_renode,
    parse_device,
)
from bench_firmware.backends.renode.script import CYCLE_SOURCE, platform_file, render_resc

__all__ = [
    "CYCLE_SOURCE",
    "INSTALL_HINT",
    "RENODE_ENV",
    "RenodeBoard",
    "RenodeRunResult",
    "find_renode",
    "parse_device",
    "platform_file",
    "render_resc",
]
