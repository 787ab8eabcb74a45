"""The work a plan asks of a board, as upper bounds for the serial client's timeouts.

A physical or Renode board gets the same work-scaled timeouts as a virtual twin: the plan's
size for the commands that check it (``mp-reload``, and the boot that validates the model
region before ``m-ready``), and the expected time of one inference for ``infer``
(:meth:`bench_firmware.protocol.DutClient.infer`'s ``run_s``). The figures here are
deliberate over-estimates: a timeout only has to tell a slow board from a stuck one, and a
too-short one fails a job that would have finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench_firmware import plan_format as pf
from bench_firmware.protocol.client import RELOAD_S_PER_KIB

# Board cycles per MAC at most: the reference kernels run kws_tiny and mobilenet_tiny at about
# 39 cycles/MAC on the F446 twin (`mcuprof run --kernels ref`, 2026-12); 2.5 times that covers
# a slower op mix and flash wait states.
CYCLES_PER_MAC_CEILING = 100.0
# Board cycles per arena byte per operator at most, for work that is not MACs (pooling,
# element-wise ops, softmax, requantization): no operator touches more than the arena, and
# the reference paths spend well under 20 cycles on an int8 element.
CYCLES_PER_ARENA_BYTE_CEILING = 20.0


@dataclass(frozen=True)
class PlanWork:
    """What the header of a plan says about the work it asks for."""

    plan_bytes: int
    macs: int
    n_ops: int
    arena_bytes: int

    @classmethod
    def of(cls, plan: bytes) -> PlanWork:
        """The work of ``plan`` from its header; a plan too short or not a plan counts as
        bytes only (the firmware refuses it, quickly)."""
        if len(plan) < pf.HEADER.size or plan[:4] != pf.MAGIC:
            return cls(plan_bytes=len(plan), macs=0, n_ops=0, arena_bytes=0)
        header = pf.HEADER.unpack(plan)

        def number(key: str) -> int:
            return int(header[key])  # type: ignore[call-overload]

        return cls(plan_bytes=len(plan), macs=number("macs_lo") | number("macs_hi") << 32,
                   n_ops=number("n_ops"), arena_bytes=number("arena_bytes"))

    @property
    def run_cycles(self) -> float:
        """Board cycles one inference takes at most (see the ceilings above)."""
        return (self.macs * CYCLES_PER_MAC_CEILING
                + self.n_ops * self.arena_bytes * CYCLES_PER_ARENA_BYTE_CEILING)

    def run_s(self, cycles_per_s: float) -> float:
        """Seconds one inference takes at most on a target that runs ``cycles_per_s``."""
        return self.run_cycles / cycles_per_s

    @property
    def check_s(self) -> float:
        """Seconds the firmware's check of the plan may take (``mp-reload`` or at boot), on
        top of the fixed timeout: the share :meth:`DutClient.reload_plan` adds."""
        return self.plan_bytes / 1024 * RELOAD_S_PER_KIB
