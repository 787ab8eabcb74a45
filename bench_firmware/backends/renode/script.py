"""The files of a Renode session for one board: the platform description (``.repl``, shipped per
board in ``platforms/``) and the start-up script (``.resc``, written per session by
:func:`render_resc`). Pure functions, no Renode needed; ``tests/unit/test_renode_config.py``
checks both against the board catalogue and the firmware's register headers.

What the generated script does, in order (Renode monitor commands; see docs/renode.md):

1. ``mach create`` and ``machine LoadPlatformDescription`` with the board's ``.repl``;
2. ``cpu PerformanceInMips <clock in MHz>``: Renode turns executed instructions into virtual time
   at that rate, and the ``.repl``'s DWT counts virtual time at the core clock, so CYCCNT counts
   one per instruction. Cycle figures from Renode are therefore instruction counts at a fixed
   rate: no pipeline, no wait states, no caches (``CYCLE_SOURCE``);
3. ``emulation SetGlobalAdvanceImmediately true``: run as fast as the host can rather than pace
   virtual time to wall-clock time (the counts do not depend on it);
4. a ``reset`` macro, run at once and on any machine reset: ``sysbus LoadELF`` the firmware,
   ``cpu VectorTableOffset`` = the flash base (where its vector table is) and, when there is one,
   ``sysbus LoadBinary`` the plan at the model region;
5. ``emulation CreateServerSocketTerminal <port> "term" false`` (raw bytes, no telnet
   negotiation) and ``connector Connect sysbus.<uart> term``: the board's ST-LINK UART on
   ``socket://127.0.0.1:<port>``;
6. ``start``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench_firmware.boards import Board
from bench_firmware.errors import BoardError

PLATFORM_DIR = Path(__file__).resolve().parent / "platforms"
PLATFORM_SUFFIX = ".repl"

# The firmware's cycles as Renode reports them: instructions at PerformanceInMips = clock in MHz.
CYCLE_SOURCE = "renode-estimate"

TERMINAL_NAME = "term"  # the socket terminal the board's UART is connected to
MACHINE_NAME_PREFIX = "mcuprof-"

# Renode monitor paths are written ``@/path``; the monitor splits a command at whitespace and
# quotes, so paths with those cannot be passed this way.
_UNSAFE_PATH = re.compile(r"[\s\"'`;#]")


def platform_file(board: Board) -> Path:
    """The board's platform description; :class:`BoardError` when mcuprof has none for it."""
    path = PLATFORM_DIR / f"{board.name}{PLATFORM_SUFFIX}"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PLATFORM_DIR.glob(f"*{PLATFORM_SUFFIX}")))
        raise BoardError(f"no Renode platform description for {board.name} ({path} is missing); "
                         f"boards with one: {known or 'none'}. A wheel built without "
                         f"bench_firmware/backends/renode/platforms/*.repl lacks them: reinstall "
                         f"from the "
                         f"source tree (pip install -e .)")
    return path


def uart_peripheral(board: Board) -> str:
    """The name of the board's ST-LINK UART in its ``.repl`` (``usart2``, ``usart3``,
    ``lpuart1``), from the catalogue's ``uart`` ("USART2 PA2/PA3 AF7")."""
    return board.uart.split()[0].lower()


def performance_mips(board: Board) -> int:
    """``cpu PerformanceInMips``: the core clock in MHz, so one instruction takes one cycle of
    virtual time. Renode takes an integer; every catalogue clock is a whole number of MHz."""
    if board.clock_hz <= 0 or board.clock_hz % 1_000_000:
        raise BoardError(f"{board.name}: Renode needs the clock as a whole number of MHz, "
                         f"the catalogue says {board.clock_hz} Hz")
    return board.clock_hz // 1_000_000


def machine_name(board: Board) -> str:
    return f"{MACHINE_NAME_PREFIX}{board.name}"


def monitor_path(path: Path) -> str:
    """``@/absolute/path`` for a Renode monitor command; :class:`BoardError` for a path the
    monitor would split."""
    text = str(Path(path).resolve())
    if _UNSAFE_PATH.search(text):
        raise BoardError(f"Renode cannot load {text!r}: its monitor splits paths at whitespace "
                         f"and quotes; use a working directory without them (set TMPDIR, or "
                         f"pass workdir= to RenodeBoard)")
    return f"@{text}"


def load_plan_commands(board: Board, plan: Path) -> list[str]:
    """Monitor commands that write ``plan`` into the model region of a running machine: pause,
    load, resume (the firmware then re-reads it on ``mp-reload%``)."""
    return ["pause", f"sysbus LoadBinary {monitor_path(plan)} {board.model_region_base:#010x}",
            "start"]


def render_resc(board: Board, *, platform: Path, elf: Path, uart_port: int,
                plan: Path | None = None) -> str:
    """The ``.resc`` that boots ``board``'s firmware ``elf`` in Renode on ``platform`` (the
    ``.repl``), with the board's UART on TCP ``uart_port`` and, if given, ``plan`` in the
    model region. The steps are listed in the module docstring."""
    if not 0 < uart_port < 65536:
        raise BoardError(f"{uart_port} is not a TCP port")
    mips = performance_mips(board)
    uart = uart_peripheral(board)
    lines = [
        f":name: mcuprof {board.name}",
        f":description: the mcuprof bench firmware on {board.mcu} (written by mcuprof; "
        f"regenerated for every session)",
        "",
        "using sysbus",
        f'mach create "{machine_name(board)}"',
        f"machine LoadPlatformDescription {monitor_path(platform)}",
        "",
        f"# One instruction per cycle: {mips} MIPS = the {board.name} core clock in MHz, and the",
        "# platform's DWT counts virtual time at that clock, so CYCCNT = instructions executed.",
        f"cpu PerformanceInMips {mips}",
        "# As fast as the host can: virtual time need not follow the wall clock.",
        "emulation SetGlobalAdvanceImmediately true",
        "",
        "# Renode runs the `reset` macro now and on every machine reset: the firmware, VTOR at",
        "# its vector table (the flash base)"
        + (f" and the plan in the model region ({board.model_region_bytes} bytes at "
           f"{board.model_region_base:#010x})." if plan is not None else "."),
        "macro reset",
        '"""',
        f"    sysbus LoadELF {monitor_path(elf)}",
        f"    cpu VectorTableOffset {board.flash_base:#010x}",
    ]
    if plan is not None:
        lines.append(f"    sysbus LoadBinary {monitor_path(plan)} {board.model_region_base:#010x}")
    lines += [
        '"""',
        "runMacro $reset",
        "",
        f"# {board.uart.split()[0]} (the ST-LINK virtual COM port) on socket://127.0.0.1:"
        f"{uart_port}, raw bytes.",
        f'emulation CreateServerSocketTerminal {uart_port} "{TERMINAL_NAME}" false',
        f"connector Connect sysbus.{uart} {TERMINAL_NAME}",
        "",
        "start",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Reading our .repl files back (for the tests and for the backend's own sanity check)


@dataclass
class ReplEntry:
    """One entry of a platform description: ``name: Type @ sysbus <address>`` with its
    attributes (``key: value`` lines, values as written) and ``init:`` statements."""

    name: str
    type: str | None
    address: int | None
    range_size: int | None = None  # from a ``<address, +size>`` registration
    attributes: dict[str, str] = field(default_factory=dict)
    init: list[str] = field(default_factory=list)

    def int_attr(self, key: str) -> int:
        return int(self.attributes[key], 0)

    @property
    def size(self) -> int | None:
        """Bytes it occupies on the bus, where the entry says (``size:`` or a range)."""
        if "size" in self.attributes:
            return self.int_attr("size")
        return self.range_size

    def init_writes(self) -> dict[int, int]:
        """offset → value of its ``WriteDoubleWord`` init statements (reset values)."""
        writes = {}
        for statement in self.init:
            parts = statement.split()
            if len(parts) == 3 and parts[0] == "WriteDoubleWord":
                writes[int(parts[1], 0)] = int(parts[2], 0)
        return writes


_ENTRY = re.compile(
    r"(?P<name>[A-Za-z_]\w*):\s*(?P<type>[A-Za-z_][\w.]*)?\s*"
    r"(?:@\s*sysbus(?:\s+(?:(?P<addr>0x[0-9A-Fa-f]+|\d+)|<\s*(?P<start>0x[0-9A-Fa-f]+|\d+)"
    r"\s*,\s*\+\s*(?P<rsize>0x[0-9A-Fa-f]+|\d+)\s*>))?)?\s*$"
)


def parse_repl(text: str) -> dict[str, ReplEntry]:
    """The entries of a platform description in the indented subset of the format that our
    ``platforms/*.repl`` use (``//`` comments, one entry per unindented line, four-space
    attributes, an ``init:`` block). Raises ``ValueError`` on anything else."""
    entries: dict[str, ReplEntry] = {}
    current: ReplEntry | None = None
    in_init = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0:
            m = _ENTRY.fullmatch(body)
            if not m:
                raise ValueError(f"line {number}: not an entry: {raw!r}")
            address = m["addr"] or m["start"]
            current = ReplEntry(
                name=m["name"], type=m["type"],
                address=int(address, 0) if address else None,
                range_size=int(m["rsize"], 0) if m["rsize"] else None,
            )
            if current.name in entries:
                raise ValueError(f"line {number}: {current.name} is declared twice")
            entries[current.name] = current
            in_init = False
        elif current is None:
            raise ValueError(f"line {number}: an attribute outside any entry: {raw!r}")
        elif indent == 4:
            in_init = body in ("init:", "init add:")
            if in_init:
                continue
            if "->" in body:  # an interrupt connection: kept as written
                current.attributes.setdefault("->", body)
                continue
            key, sep, value = body.partition(":")
            if not sep:
                raise ValueError(f"line {number}: expected key: value, got {raw!r}")
            current.attributes[key.strip()] = value.strip().strip('"')
        elif indent == 8 and in_init:
            current.init.append(body)
        else:
            raise ValueError(f"line {number}: unexpected indentation: {raw!r}")
    return entries
