"""README.md's "Settings" table, made from the settings classes of every role.

``python -m service.settings_doc`` prints it; ``tests/unit/test_settings.py`` fails when the
README's table is not what this makes (a setting added, removed or reworded). It lives in
``service/`` because that is the lowest package that may import every role's settings.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from bench_firmware.settings import LocalSettings, env_name
from profiler_client.settings import ClientSettings
from service.agent_settings import AgentSettings
from service.config import Settings

# (class, role) in the order of the layers; a field inherited from an earlier class (the
# agent's server and token are the client's) is listed once, under the class declaring it.
ROLES: tuple[tuple[type[BaseSettings], str], ...] = (
    (LocalSettings, "local tools, board back ends"),
    (ClientSettings, "client, CLI, agent"),
    (AgentSettings, "agent"),
    (Settings, "server"),
)
HEADER = ("| variable | role | type | default | meaning |\n"
          "|---|---|---|---|---|")
_DEFAULT_NOTE = re.compile(r"\s*\[default: (?P<default>[^\]]*)\]")


def rows() -> Iterator[tuple[str, str, str, str, str]]:
    """(variable, role, type, default, meaning) for every setting of every role."""
    seen: set[str] = set()
    for settings, role in ROLES:
        for name, info in settings.model_fields.items():
            variable = env_name(settings, name)
            if variable in seen:
                continue
            seen.add(variable)
            meaning = info.description or ""
            note = _DEFAULT_NOTE.search(meaning)
            if note:
                meaning = _DEFAULT_NOTE.sub("", meaning)
                default = note["default"]
            else:
                default = "unset" if info.default is None else f"`{info.default}`"
            yield variable, role, _type_name(info), default, meaning


def _type_name(info: FieldInfo) -> str:
    annotation: Any = info.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (typing.Union, __import__("types").UnionType) and args:
        annotation = args[0]
    if get_origin(annotation) is Literal:
        return " or ".join(f"`{a}`" for a in get_args(annotation))
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    """The Markdown table, header included."""
    lines = [HEADER]
    for row in rows():
        variable, *rest = row
        lines.append("| " + " | ".join([f"`{variable}`", *map(_cell, rest)]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())  # noqa: T201  (a command-line tool: the table is its output)
