"""A host client that behaves like the MLPerf Tiny runner (mlcommons/tiny ``benchmark/runner``),
to check that an mcuprof board or twin works with it unmodified. Our own code, written from the
runner's documented behaviour:

- serial: 115200 8N1; a command is the text plus ``%``; a reader thread splits the input on
  ``\\n`` and drops ``\\r`` and NUL; an answer is every line up to the first that *contains*
  ``m-ready``; each line must come within 5 s or the command fails ("No response to command");
  an answer of one line is returned as a string, else as a list (``serial_device.py``);
- identification: the port is opened, the runner waits 2 s, then sends ``name%`` and
  ``profile%`` and reads ``m-name-dut-[...]``, ``m-model-[...]`` and ``m-profile-[...]`` with
  ``^m-(name)-dut-\\[([^]]+)]$`` and ``^m-(model|profile)-\\[([^]]+)]$``; then it closes the
  port and opens it again for the script (``main.py`` ``init_dut``, ``device_under_test.py``);
- the test script is chosen by the ``m-model`` name (``tests_performance.yaml``,
  ``tests_accuracy.yaml``); a ``download`` step sends ``db load N%`` and the input in ``db``
  lines of 31 bytes as lowercase hex; ``infer N W%`` always carries W; the answer's
  ``^m-results-\\[([^]]+)\\]$`` is parsed as floats, the first and second ``m-lap-us-<n>`` are
  start and end (``script.py``);
- performance: throughput = N / elapsed per window; the runner flags a loop count other than 5
  ("error 1") and a loop that took under 10 s ("error 2"); the median is reported;
- accuracy: each result vector with more than one value is normalised by its sum, the file's
  class is the majority arg-max, top-1 accuracy is the share of files right; single-value
  results (anomaly scores) are ranked for the AUC (``main.py`` ``summarize_result``).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

import numpy as np
import serial

BAUD_RATE = 115200  # performance mode
LINE_TIMEOUT_S = 5.0  # seconds the runner waits for each line of an answer
PORT_TIMEOUT_S = 0.1  # the runner's pyserial read timeout
IDENTIFY_WAIT_S = 2.0  # seconds the runner sleeps after opening the port, before `name%`
DB_CHUNK_BYTES = 31  # input bytes per `db` line (26 with an energy monitor)
PERFORMANCE_LOOPS = 5  # windows the runner expects in performance mode
PERFORMANCE_MIN_S = 10.0  # seconds a performance loop must last

# The stock scripts (tests_performance.yaml / tests_accuracy.yaml), as steps:
# ("loop", count or None for every file, [steps]), ("download",), ("infer", N, W).
Step = tuple[Any, ...]
PERFORMANCE: dict[str, list[Step]] = {
    "ad01": [("loop", 5, [("download",), ("infer", 1500, 10)])],
    "ic01": [("loop", 5, [("download",), ("infer", 20, 5)])],
    "kws01": [("loop", 5, [("download",), ("infer", 70, 10)])],
    "vww01": [("loop", 5, [("download",), ("infer", 20, 5)])],
}
ACCURACY: dict[str, list[Step]] = {
    name: [("loop", None, [("download",), ("infer", 1, 0)])]
    for name in ("ad01", "ic01", "kws01", "vww01")
}

_NAME_RE = re.compile(r"^m-(name)-dut-\[([^]]+)]$")
_PROFILE_RE = re.compile(r"^m-(model|profile)-\[([^]]+)]$")
_RESULTS_RE = re.compile(r"^m-results-\[([^]]+)\]$")
_LAP_RE = re.compile(r"^m-lap-us-([0-9]+)$")


class RunnerError(RuntimeError):
    """What the runner would have died of."""


class RunnerSerial:
    """The runner's serial link: a reader thread, a line queue, answers up to ``m-ready``."""

    def __init__(self, port: str, *, line_timeout_s: float = LINE_TIMEOUT_S) -> None:
        self._port = serial.Serial(port, BAUD_RATE, timeout=PORT_TIMEOUT_S)  # opens it
        self._lines: Queue[str] = Queue()
        self._running = False
        self._thread: threading.Thread | None = None
        self.line_timeout_s = line_timeout_s
        self.log: list[str] = []
        self.longest_wait_s = 0.0  # the longest wait for one line: the runner allows 5 s

    def __enter__(self) -> RunnerSerial:
        if not self._port.is_open:
            self._port.open()
        self._running = True
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()
        self._port.close()

    def _read_loop(self) -> None:
        msg = ""
        while self._running:
            try:
                char = self._port.read(1).decode(errors="replace")
            except (serial.SerialException, OSError):
                return
            if char and char not in "\n\r\0":
                msg += char
            elif char == "\n":
                self._lines.put(msg)
                msg = ""

    def send_command(self, command: str) -> str | list[str]:
        self.log.append(f"> {command}%")
        self._port.write(f"{command}%".encode())
        lines: list[str] = []
        while True:
            waited = time.monotonic()
            try:
                line = self._lines.get(timeout=self.line_timeout_s)
            except Empty:
                raise RunnerError(f"No response to command {command}") from None
            self.longest_wait_s = max(self.longest_wait_s, time.monotonic() - waited)
            self.log.append(f"< {line}")
            if line:
                lines.append(line)
            if "m-ready" in line:
                break
        return lines if len(lines) != 1 else lines[0]


def _lines(answer: str | list[str]) -> list[str]:
    return [answer] if isinstance(answer, str) else answer


class RunnerDut:
    """The runner's device under test: identification, download, infer."""

    def __init__(self, port: str, *, line_timeout_s: float = LINE_TIMEOUT_S) -> None:
        self.serial = RunnerSerial(port, line_timeout_s=line_timeout_s)
        self.name: str | None = None
        self.model: str | None = None
        self.profile: str | None = None

    def identify(self, wait_s: float = IDENTIFY_WAIT_S) -> None:
        """Opens the port, waits, reads name, model and profile, closes the port."""
        with self.serial:
            time.sleep(wait_s)
            for line in _lines(self.serial.send_command("name")):
                match = _NAME_RE.match(line)
                if match:
                    self.name = match.group(2)
            for line in _lines(self.serial.send_command("profile")):
                match = _PROFILE_RE.match(line)
                if match:
                    setattr(self, match.group(1), match.group(2))

    def load(self, data: bytes) -> None:
        self.serial.send_command(f"db load {len(data)}")
        for i in range(0, len(data), DB_CHUNK_BYTES):
            chunk = data[i:i + DB_CHUNK_BYTES]
            self.serial.send_command("db " + "".join(f"{d:02x}" for d in chunk))

    def infer(self, number: int, warmups: int) -> list[str]:
        return _lines(self.serial.send_command(f"infer {number} {warmups}"))


@dataclass
class Sample:
    """One dataset file: its bytes and its true class (for AD, ``segment``/``stride`` cut
    the file into the windows the runner sends, as its truth file's bytes_to_send/stride)."""

    name: str
    data: bytes
    label: int
    segment: int | None = None
    stride: int | None = None


@dataclass
class Window:
    """One ``infer`` of a script: what the runner gathers from its answer."""

    file: str
    label: int
    results: list[float]
    start_us: int | None
    end_us: int | None
    iterations: int
    warmups: int

    @property
    def elapsed_us(self) -> int | None:
        if self.start_us is None or self.end_us is None:
            return None
        return self.end_us - self.start_us

    @property
    def throughput(self) -> float:
        return self.iterations / (self.elapsed_us / 1e6) if self.elapsed_us else 0.0


@dataclass
class RunReport:
    model: str
    mode: str
    windows: list[Window] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def median_throughput(self) -> float:
        return statistics.median(w.throughput for w in self.windows)

    @property
    def median_latency_ms(self) -> float:
        return 1000.0 / self.median_throughput

    def top1(self) -> float:
        """Share of files whose majority arg-max of the sum-normalised results is their class."""
        votes: dict[str, list[int]] = {}
        labels: dict[str, int] = {}
        for w in self.windows:
            scores = normalize(w.results) if len(w.results) > 1 else w.results
            votes.setdefault(w.file, []).append(max(range(len(scores)), key=scores.__getitem__))
            labels[w.file] = w.label
        right = sum(Counter(v).most_common(1)[0][0] == labels[f] for f, v in votes.items())
        return right / len(votes)

    def auc(self) -> float:
        """ROC AUC of single-value results (anomaly scores, averaged per file) against the
        files' classes (1: anomalous)."""
        per_file: dict[str, list[float]] = {}
        labels: dict[str, int] = {}
        for w in self.windows:
            per_file.setdefault(w.file, []).append(w.results[0])
            labels[w.file] = w.label
        scores = {f: sum(v) / len(v) for f, v in per_file.items()}
        pos = [scores[f] for f in scores if labels[f] == 1]
        neg = [scores[f] for f in scores if labels[f] != 1]
        if not pos or not neg:
            raise RunnerError("the AUC needs files of both classes")
        wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
        return wins / (len(pos) * len(neg))


AD_MELS = 128  # log-mel bins per frame of the AD features; the network takes 5 frames


def anomaly_files(model: bytes, n_files: int, frames: int = 7,
                  seed: int = 200) -> tuple[list[Sample], dict[str, float]]:
    """AD dataset files as the runner's: float32 log-mel frames, ``frames`` per file, which the
    runner cuts into 5-frame segments of 640 values (its truth file's bytes_to_send 2560,
    stride 512). Odd files carry more noise. A file's label is 1 (anomalous) when the mean
    score of its segments under TFLite's reference kernels (the firmware's score,
    :func:`bench_firmware.protocol.anomaly.anomaly_score`) is above the median, so the AUC of
    a board's scores must be 1. Also returns those reference scores by file name."""
    from bench_firmware.protocol.anomaly import anomaly_score, dequantize, quantize_features
    from tests.oracle import tflm_run
    from tests.zoo import random_input
    from tests.zoo_inputs import input_quantization, output_quantization

    in_scale, in_zp = input_quantization(model)
    out_scale, out_zp = output_quantization(model)
    segment, stride = 5 * AD_MELS * 4, AD_MELS * 4
    files, scores = [], {}
    for k in range(n_files):
        rng = np.random.default_rng(seed + k)
        base = dequantize(random_input(model, seed=seed + k).tobytes(), in_scale, in_zp)
        values = np.concatenate([base, base[: (frames - 5) * AD_MELS]])
        noise = (2.0 if k % 2 else 0.2) * in_scale
        values = (values + noise * rng.standard_normal(values.size)).astype(np.float32)
        data = values.tobytes()
        segment_scores = []
        for i in range(0, len(data) - segment + 1, stride):
            x = np.frombuffer(data[i:i + segment], np.float32)
            q = np.frombuffer(quantize_features(x, in_scale, in_zp), np.int8)
            y = tflm_run(model, q)
            segment_scores.append(anomaly_score(y.tobytes(), out_scale, out_zp, x))
        name = f"ad_{k}.bin"
        scores[name] = float(np.mean(segment_scores))
        files.append(Sample(name, data, 0, segment=segment, stride=stride))
    median = float(np.median(list(scores.values())))
    for f in files:
        f.label = int(scores[f.name] > median)
    return files, scores


def normalize(scores: Sequence[float]) -> list[float]:
    """The runner's ``normalize_probabilities``: each score over their sum."""
    total = sum(scores)
    return [s / total for s in scores]


def gather(answer: list[str]) -> tuple[list[float], int | None, int | None]:
    """Results and the two laps from an ``infer`` answer, as the runner parses them."""
    results: list[float] = []
    laps: list[int] = []
    for line in answer:
        match = _RESULTS_RE.match(line)
        if match:
            try:
                results = [float(x) for x in match.group(1).split(",") if x.strip()]
            except ValueError:
                results = []
            continue
        match = _LAP_RE.match(line)
        if match:
            laps.append(int(match.group(1)))
    return results, (laps[0] if laps else None), (laps[1] if len(laps) > 1 else None)


def run_script(dut: RunnerDut, samples: Sequence[Sample], mode: str, *,
               scripts: dict[str, list[Step]] | None = None) -> RunReport:
    """Runs the script for the DUT's model (``dut.identify()`` first) over ``samples``, in
    ``mode`` "p" (performance) or "a" (accuracy). Raises :class:`RunnerError` where the
    runner would fail: no script for the model, no answer within the line timeout."""
    table = scripts if scripts is not None else (PERFORMANCE if mode == "p" else ACCURACY)
    if dut.model not in table:
        raise RunnerError(f"no test script for model {dut.model!r} (the runner's "
                          f"test_script.get(model) is None)")
    report = RunReport(dut.model, mode)
    start = time.monotonic()
    with dut.serial:
        _run_steps(dut, list(samples), table[dut.model], mode, report)
    report.seconds = time.monotonic() - start
    return report


def _windows(sample: Sample, model: str, mode: str) -> list[bytes]:
    if model != "ad01" or sample.segment is None:
        return [sample.data]
    stride = sample.stride or sample.segment
    cuts = [sample.data[i:i + sample.segment]
            for i in range(0, len(sample.data) - sample.segment + 1, stride)]
    return cuts[:1] if mode in ("p", "e") else cuts


def _run_steps(dut: RunnerDut, samples: list[Sample], steps: list[Step], mode: str,
               report: RunReport) -> None:
    for step in steps:
        if step[0] != "loop":
            raise RunnerError(f"a script starts with a loop, not {step!r}")
        count, body = step[1], step[2]
        count = len(samples) if count is None else count
        loop_start = time.monotonic()
        for i in range(count):
            sample = samples[i % len(samples)]
            for data in _windows(sample, report.model, mode):
                for inner in body:
                    if inner[0] == "download":
                        dut.load(data)
                    elif inner[0] == "infer":
                        n, w = inner[1], inner[2]
                        results, t0, t1 = gather(dut.infer(n, w))
                        if t0 is None or t1 is None:
                            report.errors.append("Incomplete time data")
                        report.windows.append(Window(sample.name, sample.label, results, t0,
                                                     t1, n, w))
        if mode == "p":
            if count != PERFORMANCE_LOOPS:
                report.errors.append("error 1")
            if time.monotonic() - loop_start < PERFORMANCE_MIN_S:
                report.errors.append("error 2")


def scaled(scripts: dict[str, list[Step]], iterations: int, warmups: int,
           loops: int | None = None) -> dict[str, list[Step]]:
    """The scripts with every ``infer`` set to ``iterations`` and ``warmups`` (and every
    counted loop to ``loops``), for a twin too slow for the stock figures."""
    def step(s: Step) -> Step:
        if s[0] == "infer":
            return ("infer", iterations, warmups)
        if s[0] == "loop":
            return ("loop", loops if loops is not None and s[1] is not None else s[1],
                    [step(x) for x in s[2]])
        return s
    return {name: [step(s) for s in steps] for name, steps in scripts.items()}
