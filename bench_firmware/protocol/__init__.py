"""The serial protocol between the host and the bench firmware: the line parser, the client
(:class:`DutClient`) and the host build of the firmware on a pty or TCP (:class:`HostDut`).

One protocol for both sides; the firmware side is ``firmware/protocol/`` and the same
reference heads ``firmware/protocol/protocol.c``. Change both together.

It is the MLPerf Tiny / EEMBC DUT protocol (as the MLPerf Tiny benchmark's reference
implementation defines it: mlcommons/tiny ``benchmark/api/internally_implemented.cpp`` for
the device, ``benchmark/runner/device_under_test.py`` for the host) plus mcuprof's own
commands, which all start with ``mp-``.

Framing
    A command is ASCII ending with ``%``; tokens are separated by spaces; ``\\r``, ``\\n``
    and NUL are ignored. At most 80 characters before the ``%``: a longer command is
    discarded up to its ``%`` and answered ``e-[command too long]``. ``%`` alone is answered
    with ``m-ready`` only (used to resynchronise). Answer lines end with ``\\r\\n``;
    ``m-...`` lines are messages, ``e-[...]`` lines errors. Every command is answered, after
    its own lines, by ``m-ready``.

Boot
    ``m-timestamp-mode-performance`` (it boots in performance mode), ``m-plan-[...]`` (as
    for ``mp-plan``, never an ``e-`` line), ``m-init-done``, ``m-ready``.

Lists
    A list is one line ``m-<name>-[v0,v1,...]`` when that line has at most 200 characters
    (:data:`LIST_LINE_MAX`); otherwise chunk lines ``m-<name>-<start>/<total>-[...]``, each at
    most 200 characters, ``start`` being the index of the chunk's first item and ``total`` the
    list's length (``m-layers-0/300-[...]``, ``m-layers-41/300-[...]``, ...). The host
    joins them and checks that the starts are contiguous and add up to ``total``
    (:func:`assemble_list`). An empty list is ``m-<name>-[]``. ``m-results`` is the exception:
    always one line, however long, because the MLPerf Tiny runner reads it that way.

Boot, and the UART without a host
    As on a Nucleo's ST-LINK virtual COM port, nothing is kept for a host that has not opened
    the port: a virtual board drops what it prints while no client is connected, so a host
    that opens the port late misses the banner and should :meth:`DutClient.sync`.

MLPerf Tiny commands
    ``name%``
        ``m-name-dut-[<board name>]``
    ``profile%``
        ``m-profile-[mcuprof-<firmware version>]``, then ``m-model-[<EEMBC name>]``
        (``kws01``, ``vww01``, ``ic01``, ``ad01``: ``mcuprof compile --mlperf-name``; the MLPerf
        Tiny runner picks its test script by it), else ``m-model-[<16 hex model id>]``, or
        ``m-model-[none]`` without a plan. ``mp-plan`` always gives the model id.
    ``timestamp%``
        ``m-lap-us-<microseconds since boot>`` (and a pulse on the timestamp pin)
    ``db load N%``
        ``m-[Expecting N bytes]`` for any N from 1 up to the plan's input tensor size M, as
        the reference: the upload fills the input's first N bytes, the rest keep what they
        held. Else ``e-[db load: N must be at least 1 byte]`` or
        ``e-[db load: N bytes exceed the model input of M bytes]``; without a valid plan
        ``e-[db load: no valid plan (<status>)]``. Anomaly detection (a plan named ``ad01``
        whose int8 output has its int8 input's size): N may also be 4 * M, the input as
        little-endian float32 values as the EEMBC AD reference DUT takes them; the board
        quantizes them (TFLite's AffineQuantize, round half away from zero) and keeps them for
        the score (:func:`quantize_features`, :func:`anomaly_score`).
    ``db <hex>%``
        appends bytes (two hex digits each) to the input; ``m-load-done`` after the byte that
        completes N. Errors, nothing appended: ``e-[Insufficent number of hex digits]`` (odd
        count, MLPerf's spelling), ``e-[Invalid hex digit '<c>']``,
        ``e-[db: K more bytes would exceed the N expected (R received)]``,
        ``e-[db: no upload announced; send db load N first]``.
        The host sends 31 bytes per line, as the MLPerf Tiny runner does.
    ``db print%``
        the received bytes as a list named ``buffer`` of 2-hex-digit items
    ``infer N W%``
        W untimed warm-up runs (default 10), then N timed runs (default 1, at least 1):
        ``m-warmup-start-W``, ``m-warmup-done``, ``m-infer-start-N``, ``m-lap-us-<t0>``,
        ``m-lap-us-<t1>``, ``m-infer-done``, the ``results`` list. t0/t1 are taken just
        before the first and after the last timed run, each with a >= 1 us low pulse on the
        timestamp pin; both lap lines are printed after the loop so UART time is not
        measured. Between them, each run also reads the µs clock (so laps stay right across
        cycle-counter wraps) and, when the plan overwrites its input, first restores the input
        from a copy kept in the arena; ``mp-cycles`` count the runtime's invoke alone.
        Fewer bytes than the last ``db load N``: ``e-[input incomplete: got X of N bytes]``,
        nothing runs.
        A failing run: ``e-[infer: <status>]``. When the plan overwrites its own input and the
        arena has no room for a copy, ``m-warning-[...]`` precedes the results.
    ``results%``
        the ``results`` line of the last infer: the output dequantized, as the EEMBC
        reference DUTs send it (``(q - zero_point) * scale`` of an int8 output, the values of a
        float32 one), decimal fractions with six digits after the point (``-0.003906``),
        ``d.dddddde<exp>`` from 1e9 up, ``nan``, ``inf``, ``-inf``. One line, however long.
        Anomaly detection: one value, the EEMBC AD reference's anomaly score, the mean squared
        error between the dequantized output and the input, summed in float32.
    anything else
        ``e-[Unknown command: <command>]``

mcuprof commands
    ``mp-plan%``
        ``m-plan-[status=ok,model=<16 hex>,board=<code>,ops=<n>,arena=<bytes>,
        capacity=<board arena bytes>,bytes=<plan bytes>,input=<bytes>,output=<bytes>,
        input-type=int8|float32,output-type=int8|float32]``; without a valid plan
        ``m-plan-[status=<token>,region=<model region bytes>]`` then
        ``e-[plan: <status text>]``, tokens ``not-loaded magic version size crc board arena op``.
    ``mp-reload%``
        validates the model region again (after the host rewrote it), forgets input and
        results; answers as ``mp-plan``
    ``mp-kernels%``, ``mp-kernels ref%``, ``mp-kernels dsp%``
        ``m-kernels-[ref|dsp]``: the kernel path in use (after selecting one)
    ``mp-cycles%``
        list ``cycles``: total CYCCNT cycles of each timed run of the last infer (at most the
        first 64); when N was larger, then ``m-cycles-truncated-<N>``
    ``mp-layers%``
        list ``layers``: cycles of each operator in the last timed run
    ``mp-crc%``
        ``m-input-crc-[<8 hex>]``: CRC-32 (as ``zlib.crc32``) of the bytes received since
        ``db load``
    ``mp-results%``
        list ``raw-results``: the last output as the board holds it, for bit-exact checks:
        an int8 output as signed decimals; a float32 output (plan flag
        ``MP_FLAG_FLOAT_OUTPUT``) as the raw IEEE-754 bits of each value, 8 lowercase hex
        digits (``3f800000`` is 1.0). An int8 item never has 8 characters. :class:`DutClient`
        reads outputs here (``infer``, ``results``), so its checks stay bit-exact.
    ``mp-timestamp-mode%``, ``mp-timestamp-mode energy%``, ``mp-timestamp-mode performance%``
        ``m-timestamp-mode-performance|energy``: EEMBC's timestamp mode (after selecting one).
        In energy mode ``timestamp%`` and ``infer`` print no ``m-lap-us`` lines: a timestamp
        is the timestamp pin's falling edge alone (D7, held low >= 1 us, then high), which an
        energy monitor takes through the IO manager; ``mp-cycles`` still counts the runs. The
        UART stays at 115200 baud. A reset returns to performance mode.
    ``mp-info%``
        ``m-info-[board=<name>,code=<plan board code>,clock=<Hz>,arena=<bytes>,
        region=<model region bytes>,kernels=ref|dsp,plan=<token>,version=<firmware>,
        max-runs=64,max-ops=256]``
    ``results``, ``mp-results``, ``mp-cycles`` and ``mp-layers`` before an infer (or after a
    new upload or reload): ``e-[<command>: no inference since the last upload; run infer first]``.
    Too many arguments: ``e-[<command>: too many arguments]``.

Lifecycle of a :class:`DutClient`: ``open`` → ``wait_ready`` (after a reset) or ``sync`` →
commands → ``close`` (or use it as a context manager).

Modules: :mod:`.messages` (the line grammar, lists, outputs and answers), :mod:`.client`
(:class:`DutClient`), :mod:`.host_dut` (:class:`HostDut`). Everything is importable from
``bench_firmware.protocol``.
"""

from __future__ import annotations

from bench_firmware.protocol.client import (
    BOOT_TIMEOUT_S,
    DEFAULT_INFER_BUDGET_S,
    DEFAULT_TIMEOUT_S,
    POLL_INTERVAL_S,
    RX_LINE_MAX,
    SYNC_QUIET_S,
    TRANSCRIPT_MAX_LINES,
    DutClient,
    logger,
)
from bench_firmware.protocol.host_dut import (
    DIAGNOSE_WAIT_S,
    STOP_TIMEOUT_S,
    HostDut,
    Transport,
)
from bench_firmware.protocol.messages import (
    BAUDRATE,
    COMMAND_MAX,
    DB_CHUNK_BYTES,
    INFO_NUMBERS,
    LIST_LINE_MAX,
    MAX_RUNS,
    PLAN_NUMBERS,
    Answer,
    InferResult,
    Message,
    Output,
    assemble_list,
    format_dequantized,
    format_list,
    format_output,
    is_raw_output,
    parse_dequantized,
    parse_line,
    parse_output,
)

__all__ = [
    "BAUDRATE",
    "BOOT_TIMEOUT_S",
    "COMMAND_MAX",
    "DB_CHUNK_BYTES",
    "DEFAULT_INFER_BUDGET_S",
    "DEFAULT_TIMEOUT_S",
    "DIAGNOSE_WAIT_S",
    "INFO_NUMBERS",
    "LIST_LINE_MAX",
    "MAX_RUNS",
    "PLAN_NUMBERS",
    "POLL_INTERVAL_S",
    "RX_LINE_MAX",
    "STOP_TIMEOUT_S",
    "SYNC_QUIET_S",
    "TRANSCRIPT_MAX_LINES",
    "Answer",
    "DutClient",
    "HostDut",
    "InferResult",
    "Message",
    "Output",
    "Transport",
    "assemble_list",
    "format_dequantized",
    "format_list",
    "format_output",
    "is_raw_output",
    "logger",
    "parse_dequantized",
    "parse_line",
    "parse_output",
]
