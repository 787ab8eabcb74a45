"""What a campaign profiles: its sampled models, its name and folder, its device classes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench_firmware.backends.registry import DeviceClassError, parse_device_class
from search.campaign.errors import CampaignError
from search.network import Shape
from search.sampler import sample
from search.spaces import SearchSpace, get_space

if TYPE_CHECKING:
    from search.convert import Job


def restrict_widths(space: str | SearchSpace, max_width: int) -> SearchSpace:
    """``space`` with every width node limited to its choices ``<= max_width`` (a node
    whose smallest choice is larger keeps that one). Depth nodes are unchanged.

    Its architectures belong to the full space (same name, same nodes, fewer choices), so
    they carry the same ``backbone`` tag, rebuild with ``Architecture.from_dict`` and share
    ids with the full space. Used for small campaigns: ``max_width=16`` makes KWS models of
    0.3-1.2 M ops that the virtual boards run in about a second.
    """
    sp = get_space(space)
    if max_width < 1:
        raise CampaignError(f"max width {max_width}: give at least 1 channel")
    nodes = []
    for node in sp.nodes:
        if node.kind == "width":
            widths = [c for c in node.choices if isinstance(c, int)]
            kept = tuple(c for c in widths if c <= max_width) or (min(widths),)
            node = dataclasses.replace(node, choices=kept)
        nodes.append(node)
    return dataclasses.replace(sp, nodes=tuple(nodes))


def default_name(space: str, seed: int, *, max_width: int | None = None,
                 input_size: int | None = None) -> str:
    """``<space>-seed<seed>[-w<max width>][-<size>px]``: the campaign's name and folder."""
    name = f"{space}-seed{seed}"
    if max_width is not None:
        name += f"-w{max_width}"
    if input_size is not None:
        name += f"-{input_size}px"
    return name


def default_out(name: str) -> Path:
    """``campaigns/<name>`` under the working directory."""
    return Path("campaigns") / name


def plan_models(space: str | SearchSpace, n: int, seed: int, models_dir: Path, *,
                max_width: int | None = None, input_shape: Shape | None = None,
                weight_seed: int = 0) -> list[Job]:
    """The conversion jobs of a campaign's first ``n`` architectures (pure: no TensorFlow).

    The sampler's prefix property holds (the first ``k`` of ``n`` are the ``k`` of a
    smaller campaign), so a campaign can be extended by rerunning it with a larger ``n``."""
    from search.convert import Job

    sp = get_space(space)
    sub = restrict_widths(sp, max_width) if max_width is not None else sp
    where = f"sampled from {sp.name!r}" + (f" (widths <= {max_width})" if max_width else "")
    return [Job(name=a.name, out_dir=str(models_dir), network=a.network().to_dict(),
                arch=a.to_dict(), backbone=sp.name, weight_seed=weight_seed,
                source=f"{where} with seed {seed}, index {i}")
            for i, a in enumerate(sample(sub, n, seed, input_shape=input_shape))]


def check_devices(devices: Sequence[str]) -> list[str]:
    """The device classes, checked as the server checks them (known backend and board, no
    board id); raises CampaignError naming the bad one and the known ones."""
    if not devices:
        raise CampaignError("give at least one device, e.g. --device virtual:nucleo-f446re")
    out: list[str] = []
    for device in devices:
        try:
            name = parse_device_class(device.strip()).name
        except DeviceClassError as e:
            raise CampaignError(str(e)) from e
        if name not in out:
            out.append(name)
    return out
