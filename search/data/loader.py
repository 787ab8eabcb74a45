"""``load_dataset``: a spec (``synth:<space>`` or a directory, with ``?key=value`` options)
and a search space to a :class:`~search.data.base.Dataset`."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from search.data import dcase, speech_commands, synth, vww
from search.data.base import Dataset, DatasetError, Progress
from search.data.frontends import KWS_FRONTENDS, ML_KWS
from search.errors import InvalidArchitectureError

SYNTH_PREFIX = "synth:"
SYNTH_SETS = ("kws", "ad", "vww")


@dataclass(frozen=True)
class Published:
    """The dataset a space reads from a directory, and the options its spec takes."""

    name: str
    layout: str
    problems: Callable[[Path], list[str]]
    options: tuple[str, ...] = ()


PUBLISHED: dict[str, Published] = {
    "kws": Published("Google Speech Commands v0.02", speech_commands.LAYOUT,
                     speech_commands.layout_problems, ("frontend",)),
    "ad": Published("DCASE 2020 Task 2", dcase.LAYOUT, dcase.layout_problems, ("machine",)),
    "vww": Published("Visual Wake Words", vww.LAYOUT, vww.layout_problems),
}
OPTIONS_HELP = {"frontend": f"frontend={'|'.join(KWS_FRONTENDS)}", "machine": "machine=TYPE"}


@dataclass(frozen=True)
class Spec:
    """A parsed dataset spec: a synthetic set's name or a directory, and its options."""

    text: str
    synth: str | None = None
    path: Path | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_spec(spec: str) -> Spec:
    """``synth:kws``, ``/data/speech_commands?frontend=tf.signal``, ``dcase/?machine=fan``."""
    base, sep, query = spec.strip().partition("?")
    options: dict[str, str] = {}
    for part in query.split("&") if sep else []:
        key, eq, value = part.partition("=")
        if not (key and eq and value):
            raise DatasetError(f"dataset spec {spec!r}: option {part!r} is not key=value "
                               f"(e.g. synth:kws?frontend=tf.signal)")
        options[key] = value
    if not base:
        raise DatasetError("empty dataset spec; give synth:kws, synth:ad, synth:vww or a "
                           "directory")
    if base.startswith(SYNTH_PREFIX):
        return Spec(spec, synth=base[len(SYNTH_PREFIX):], options=options)
    return Spec(spec, path=Path(base).expanduser(), options=options)


def _found(path: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "it is empty"
    more = f" and {len(names) - 8} more" if len(names) > 8 else ""
    return f"found {', '.join(names[:8])}{more}"


def _check_layout(path: Path, space: str) -> None:
    if not path.exists():
        raise DatasetError(f"no directory {path}; give synth:{space} or a directory in the "
                           f"{PUBLISHED[space].name} layout ({PUBLISHED[space].layout})")
    if not path.is_dir():
        raise DatasetError(f"{path} is a file; give a directory in the {PUBLISHED[space].name} "
                           f"layout ({PUBLISHED[space].layout})")
    want = PUBLISHED[space]
    problems = want.problems(path)
    if not problems:
        return
    others = [f"; it looks like {p.name}, the {other!r} space's dataset"
              for other, p in PUBLISHED.items() if other != space and not p.problems(path)]
    raise DatasetError(f"{path} is not in the {want.name} layout that space {space!r} reads "
                       f"({want.layout}): missing {'; '.join(problems)}; {_found(path)}"
                       + (others[0] if others else ""))


def _frontend(space: str, spec: Spec, frontend: str | None) -> str:
    chosen = spec.options.get("frontend")
    if frontend is not None and chosen is not None and frontend != chosen:
        raise DatasetError(f"the spec asks for frontend={chosen} and the caller for "
                           f"frontend={frontend}; give one")
    name = chosen or frontend or ML_KWS
    if space != "kws" and (chosen or frontend):
        raise DatasetError(f"a front end is chosen for the kws space only; the {space} space "
                           f"has one front end")
    if name not in KWS_FRONTENDS:
        raise DatasetError(f"unknown KWS front end {name!r}; front ends: "
                           f"{', '.join(KWS_FRONTENDS)}")
    return name


def load_dataset(spec: str, space: str, *, input_shape: tuple[int, int, int] | None = None,
                 seed: int = 0, per_class: int | None = None, cache_dir: Path | None = None,
                 progress: Progress | None = None, frontend: str | None = None) -> Dataset:
    """The dataset ``spec`` names, as features for models of search space ``space``.

    ``spec``: ``synth:kws``, ``synth:ad``, ``synth:vww`` (made offline, cached in
    ``cache_dir``), or a directory in the published layout of the space's dataset (Speech
    Commands v0.02, DCASE 2020 Task 2, Visual Wake Words), with options after ``?``:
    ``frontend=ml-kws|tf.signal`` (kws), ``machine=TYPE`` (ad). ``input_shape``: the space's
    default unless given (vww takes any H x W x 1 with H, W >= 32). ``per_class``: training
    examples per class (synthetic sets: 60 unless given, validation and tests a fifth of it;
    directories: all unless given, and then at most that many in every split). ``seed`` fixes
    every random choice. ``progress`` receives one line at a time.
    """
    from search.spaces import SPACES

    if space not in PUBLISHED:
        what = "has no dataset" if space in SPACES else "is not a search space"
        raise DatasetError(f"{space!r} {what}; the spaces with a dataset are "
                           f"{', '.join(PUBLISHED)}")
    try:
        shape = SPACES[space].check_input_shape(input_shape)
    except InvalidArchitectureError as e:
        raise DatasetError(f"input_shape: {e}") from e
    if per_class is not None and (isinstance(per_class, bool)
                                  or not isinstance(per_class, numbers.Integral) or per_class < 1):
        raise DatasetError(f"per_class must be a positive number of examples; got {per_class!r}")
    per_class = None if per_class is None else int(per_class)
    parsed = parse_spec(spec)
    allowed = PUBLISHED[space].options
    for key in parsed.options:
        if key not in allowed:
            takes = ", ".join(OPTIONS_HELP[k] for k in allowed) or "no options"
            raise DatasetError(f"dataset spec {spec!r}: option {key!r} does not apply to the "
                               f"{space} space's dataset; it takes {takes}")
    frontend_name = _frontend(space, parsed, frontend)
    kws_frontend = KWS_FRONTENDS[frontend_name]
    size = (shape[0], shape[1])
    if parsed.synth is not None:
        if parsed.synth not in SYNTH_SETS:
            names = ", ".join(SYNTH_PREFIX + s for s in SYNTH_SETS)
            raise DatasetError(f"unknown synthetic set {SYNTH_PREFIX}{parsed.synth}; the "
                               f"synthetic sets are {names}")
        if parsed.synth != space:
            raise DatasetError(f"{SYNTH_PREFIX}{parsed.synth} is the {parsed.synth} space's set; "
                               f"the {space} space takes {SYNTH_PREFIX}{space} or a "
                               f"{PUBLISHED[space].name} directory")
        if space == "kws":
            return synth.synth_kws(frontend=kws_frontend, frontend_name=frontend_name, seed=seed,
                                   per_class=per_class, cache_dir=cache_dir, progress=progress)
        if space == "ad":
            return synth.synth_ad(seed=seed, per_class=per_class, cache_dir=cache_dir,
                                  progress=progress)
        return synth.synth_vww(size=size, seed=seed, per_class=per_class, cache_dir=cache_dir,
                               progress=progress)
    assert parsed.path is not None
    _check_layout(parsed.path, space)
    if space == "kws":
        return speech_commands.load_speech_commands(
            parsed.path, frontend=kws_frontend, frontend_name=frontend_name, seed=seed,
            per_class=per_class, progress=progress)
    if space == "ad":
        return dcase.load_dcase(parsed.path, machine=parsed.options.get("machine"),
                                max_classes=SPACES[space].head.classes, seed=seed,
                                per_class=per_class, progress=progress)
    return vww.load_vww(parsed.path, size=size, seed=seed, per_class=per_class,
                        progress=progress)
