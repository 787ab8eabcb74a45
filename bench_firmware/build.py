"""The firmware build driver: cross builds for the boards, host builds for tests.

``build_firmware(board)`` cross-compiles one image per board with ``arm-none-eabi-gcc`` and
newlib-nano; ``build_host("exe" | "lib")`` compiles the same runtime for this machine with the
system ``cc``. Both rebuild only when a source, a flag or the compiler changed (a hash of all
of them is stored next to the output).

Where outputs go: ``$MCUPROF_BUILD_DIR`` if set; else ``<repo>/build`` when running from a
checkout; else ``~/.cache/mcuprof/build``.

Sources (module-level constants, so they are easy to adjust):

- firmware image: every ``.c`` under ``firmware/{runtime,kernels,protocol}``, ``firmware/main.c``,
  and the board support: ``boards/common``, the MCU family folder (``boards/stm32f4`` ...) and
  ``boards/<board>``. The linker script is ``boards/<board>/linker.ld``.
- host executable: runtime, kernels, protocol, ``host/board_host.c`` and ``host/host_main.c``.
- host library (``libmcuprof_host.so``): runtime, kernels, ``host/host_lib.c`` and
  ``host/board_host.c`` (the runtime reads ``board_cycles()``).

Tests that need to build before ``main.c`` exists pass ``sources=`` to ``build_firmware`` with a
stand-in main generated in their own temporary folder; nothing here writes to the source tree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench_firmware.boards import HOST, Board
from bench_firmware.errors import BuildError
from bench_firmware.settings import local_settings

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
INCLUDE_DIR = FIRMWARE_DIR / "include"
BOARDS_DIR = FIRMWARE_DIR / "boards"
COMMON_BOARD_DIR = BOARDS_DIR / "common"
HOST_DIR = FIRMWARE_DIR / "host"

# Folders (under FIRMWARE_DIR) whose every .c goes into a build.
FIRMWARE_SOURCE_DIRS = ("runtime", "kernels", "protocol")
HOST_EXE_SOURCE_DIRS = ("runtime", "kernels", "protocol")
HOST_LIB_SOURCE_DIRS = ("runtime", "kernels")
# Single files (relative to FIRMWARE_DIR).
FIRMWARE_MAIN = "main.c"
HOST_EXE_FILES = ("host/board_host.c", "host/host_main.c")
# host_lib.c runs the runtime directly, but the runtime times operators with board_cycles().
HOST_LIB_FILES = ("host/host_lib.c", "host/board_host.c")

HOST_EXE_NAME = "mcuprof_host"
HOST_LIB_NAME = "libmcuprof_host.so"

WARNING_FLAGS = ("-Wall", "-Wextra", "-Werror")
FIRMWARE_FLAGS = (
    "-std=c99",
    "-g",
    "-ffunction-sections",
    "-fdata-sections",
    "-nostartfiles",
    "--specs=nano.specs",
    "-Wl,--gc-sections",
    *WARNING_FLAGS,
)
HOST_FLAGS = ("-std=c99", "-O2", *WARNING_FLAGS, "-DMP_HOST=1", f"-DMP_BOARD_CODE={HOST.code}")
LINK_LIBS = ("-lm",)

ARM_GCC = "arm-none-eabi-gcc"
INSTALL_HINT = (
    "install the Arm cross toolchain: `apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi` (or run `make firmware`)"
)
STAMP_SUFFIX = ".buildhash"
STDERR_TAIL_CHARS = 4000  # of a failed compiler's stderr, kept in the BuildError


@dataclass(frozen=True)
class FirmwareImage:
    """One built firmware image and what it takes (sizes in bytes, from arm-none-eabi-size)."""

    board: str
    elf: Path
    bin: Path
    text_bytes: int  # vector table, code, read-only data
    data_bytes: int  # initialized data: in flash and copied to RAM at reset
    bss_bytes: int  # zero-initialized RAM
    flash_bytes: int  # the .bin written at the flash base: text + .data's initial values
    firmware_id: str  # first 16 hex chars of the .bin's SHA-256


def build_root() -> Path:
    """Where build outputs go (see the module docstring)."""
    configured = local_settings().build_dir
    if configured is not None:
        return configured
    repo = FIRMWARE_DIR.parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "build"
    return Path.home() / ".cache" / "mcuprof" / "build"


def find_arm_gcc() -> Path:
    """The cross compiler on PATH; BuildError saying how to install it when missing."""
    found = shutil.which(ARM_GCC)
    if found is None:
        raise BuildError(f"{ARM_GCC} was not found on PATH; {INSTALL_HINT}")
    return Path(found)


def arm_tool(gcc: Path, tool: str) -> Path:
    """A binutils tool next to the compiler (arm-none-eabi-size, -objcopy ...)."""
    sibling = gcc.with_name(gcc.name.replace("gcc", tool))
    if sibling.is_file():
        return sibling
    found = shutil.which(f"arm-none-eabi-{tool}")
    if found is None:
        raise BuildError(f"arm-none-eabi-{tool} was not found next to {gcc}; {INSTALL_HINT}")
    return Path(found)


def family_dir(board: Board) -> Path:
    """The MCU-family folder of board support, e.g. boards/stm32f7 for an STM32F746ZG."""
    return BOARDS_DIR / board.mcu[:7].lower()


def board_source_dirs(board: Board) -> list[Path]:
    """Folders of board support compiled into ``board``'s image; also its include path."""
    dirs = [COMMON_BOARD_DIR, family_dir(board), BOARDS_DIR / board.name]
    return [d for d in dirs if d.is_dir()]


def _c_files(dirs: Iterable[Path]) -> list[Path]:
    return [path for d in dirs if d.is_dir() for path in sorted(d.rglob("*.c"))]


def firmware_app_sources() -> list[Path]:
    """The board-independent part of an image: runtime, kernels, protocol and main.c."""
    main = FIRMWARE_DIR / FIRMWARE_MAIN
    if not main.is_file():
        raise BuildError(f"{main} is missing: the firmware has no main() to build")
    return [*_c_files(FIRMWARE_DIR / d for d in FIRMWARE_SOURCE_DIRS), main]


def firmware_sources(board: Board, sources: Sequence[Path] | None = None) -> list[Path]:
    """Every .c of ``board``'s image; ``sources`` replaces the board-independent part."""
    app = list(sources) if sources is not None else firmware_app_sources()
    return [*app, *_c_files(board_source_dirs(board))]


def linker_script(board: Board) -> Path:
    return BOARDS_DIR / board.name / "linker.ld"


def core_flags(board: Board) -> tuple[str, ...]:
    """Preprocessor definitions naming the board's core. GCC predefines the same macros for
    ``-mcpu=cortex-m4`` and ``-mcpu=cortex-m7``; the kernels that order their loops for the
    Cortex-M7's dual issue test ``MP_CORTEX_M7``."""
    return ("-DMP_CORTEX_M7=1",) if board.core == "cortex-m7" else ()


def firmware_flags(board: Board, optimize: str = "-O2") -> list[str]:
    """The cross compiler's flags for ``board`` (without sources and outputs)."""
    if board.code == HOST.code or not board.gcc_cpu_flags:
        raise BuildError(f"{board.name} is not a cross target; use build_host() for the host build")
    includes = [f"-I{d}" for d in (INCLUDE_DIR, *board_source_dirs(board))]
    return [
        *FIRMWARE_FLAGS,
        optimize,
        *board.gcc_cpu_flags,
        *core_flags(board),
        f"-DMP_BOARD_CODE={board.code}",
        *includes,
        f"-L{COMMON_BOARD_DIR}",  # for `INCLUDE sections.ld`
        f"-T{linker_script(board)}",
    ]


def _run(cmd: Sequence[str | Path], what: str) -> str:
    """Run a build tool; BuildError with the tail of its stderr when it fails."""
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)
    except OSError as e:
        raise BuildError(f"{what}: could not run {cmd[0]}: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-STDERR_TAIL_CHARS:]
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _inputs_hash(compiler: Path, flags: Sequence[str], sources: Sequence[Path]) -> str:
    """A hash of everything an output depends on: compiler, flags, sources, headers, scripts."""
    h = hashlib.sha256()
    version = _run([compiler, "--version"], f"{compiler} --version").splitlines()[:1]
    for part in (str(compiler), *version, *flags):
        h.update(part.encode() + b"\0")
    dirs = {p.parent for p in sources} | {INCLUDE_DIR}
    dirs |= {Path(f[2:]) for f in flags if f.startswith(("-I", "-L"))}
    deps = set(sources)
    for d in dirs:
        if d.is_dir():
            deps.update(p for p in d.iterdir() if p.suffix in (".h", ".ld", ".inc"))
    for path in sorted(deps):
        h.update(str(path).encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
    return h.hexdigest()


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _up_to_date(stamp: Path, digest: str, outputs: Iterable[Path]) -> bool:
    return (
        stamp.is_file()
        and stamp.read_text().strip() == digest
        and all(p.is_file() for p in outputs)
    )


def _section_sizes(size_tool: Path, elf: Path) -> dict[str, int]:
    """Section name → bytes, from ``arm-none-eabi-size -A``."""
    out = _run([size_tool, "-A", elf], f"{size_tool.name} {elf.name}")
    sizes = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith(".") and fields[1].isdigit():
            sizes[fields[0]] = int(fields[1])
    return sizes


# Sections of the image by kind; .model_region (the plan's reserved flash) and debug
# sections are neither.
TEXT_SECTIONS = (".isr_vector", ".text", ".ARM.extab", ".ARM.exidx", ".init_array")
DATA_SECTIONS = (".data",)
BSS_SECTIONS = (".bss",)


def build_firmware(
    board: Board,
    out_dir: Path | None = None,
    *,
    optimize: str = "-O2",
    sources: Sequence[Path] | None = None,
) -> FirmwareImage:
    """Cross-compile ``board``'s firmware image (ELF + .bin) into ``out_dir``.

    ``out_dir`` defaults to ``build_root()/firmware/<board>``. ``sources`` replaces the
    board-independent sources (runtime, kernels, protocol, main.c); board support is always
    added. Nothing is rebuilt when inputs are unchanged.
    """
    gcc = find_arm_gcc()
    out = Path(out_dir) if out_dir is not None else build_root() / "firmware" / board.name
    flags = firmware_flags(board, optimize)
    if not linker_script(board).is_file():
        raise BuildError(f"no board support for {board.name}: {linker_script(board)} is missing")
    srcs = firmware_sources(board, sources)
    elf, binary = out / f"{board.name}.elf", out / f"{board.name}.bin"
    stamp = out / f"{board.name}{STAMP_SUFFIX}"
    digest = _inputs_hash(gcc, flags, srcs)

    if not _up_to_date(stamp, digest, (elf, binary)):
        out.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)
        # Build under temporary names and rename, so a concurrent reader never sees half a file.
        tmp_elf, tmp_bin = _tmp_name(elf), _tmp_name(binary)
        try:
            _run(
                [
                    gcc,
                    *flags,
                    f"-Wl,-Map={out / (board.name + '.map')}",
                    *srcs,
                    "-o",
                    tmp_elf,
                    *LINK_LIBS,
                ],
                f"firmware build for {board.name}",
            )
            _run(
                [arm_tool(gcc, "objcopy"), "-O", "binary", tmp_elf, tmp_bin], f"objcopy {elf.name}"
            )
            os.replace(tmp_elf, elf)
            os.replace(tmp_bin, binary)
        finally:
            tmp_elf.unlink(missing_ok=True)
            tmp_bin.unlink(missing_ok=True)
        stamp.write_text(digest + "\n")

    sizes = _section_sizes(arm_tool(gcc, "size"), elf)
    image = binary.read_bytes()
    return FirmwareImage(
        board=board.name,
        elf=elf,
        bin=binary,
        text_bytes=sum(sizes.get(s, 0) for s in TEXT_SECTIONS),
        data_bytes=sum(sizes.get(s, 0) for s in DATA_SECTIONS),
        bss_bytes=sum(sizes.get(s, 0) for s in BSS_SECTIONS),
        flash_bytes=len(image),
        firmware_id=hashlib.sha256(image).hexdigest()[:16],
    )


def find_host_cc() -> Path:
    """The system C compiler (``cc``) for host builds."""
    found = shutil.which("cc")
    if found is None:
        raise BuildError("no C compiler (`cc`) on PATH; install one: `apt-get install gcc`")
    return Path(found)


def host_sources(kind: str) -> list[Path]:
    """The .c files of a host build, ``kind`` "exe" or "lib"."""
    dirs: tuple[str, ...]
    files: tuple[str, ...]
    if kind == "exe":
        dirs, files = HOST_EXE_SOURCE_DIRS, HOST_EXE_FILES
    elif kind == "lib":
        dirs, files = HOST_LIB_SOURCE_DIRS, HOST_LIB_FILES
    else:
        raise BuildError(f"unknown host build kind {kind!r}; use 'exe' or 'lib'")
    paths = [FIRMWARE_DIR / f for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BuildError(f"host {kind} build: missing source(s) {', '.join(missing)}")
    return [*_c_files(FIRMWARE_DIR / d for d in dirs), *paths]


def build_host(kind: str = "exe", out_dir: Path | None = None) -> Path:
    """Build the host executable (``kind="exe"``) or shared library (``"lib"``); its path.

    The same runtime and kernels as the firmware, compiled for this machine with
    ``-DMP_HOST=1``; the executable talks the serial protocol on stdin/stdout.
    """
    cc = find_host_cc()
    srcs = host_sources(kind)
    out = Path(out_dir) if out_dir is not None else build_root() / "host"
    includes = [f"-I{INCLUDE_DIR}", f"-I{HOST_DIR}"]
    if kind == "lib":
        # --no-undefined: a symbol the library lacks fails here, not at dlopen time.
        flags = [*HOST_FLAGS, *includes, "-fPIC", "-shared", "-Wl,--no-undefined"]
        target = out / HOST_LIB_NAME
    else:
        flags = [*HOST_FLAGS, *includes]
        target = out / HOST_EXE_NAME
    stamp = target.with_name(target.name + STAMP_SUFFIX)
    digest = _inputs_hash(cc, flags, srcs)
    if not _up_to_date(stamp, digest, (target,)):
        out.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)
        tmp = _tmp_name(target)
        try:
            _run([cc, *flags, *srcs, "-o", tmp, *LINK_LIBS], f"host {kind} build")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        stamp.write_text(digest + "\n")
    return target
