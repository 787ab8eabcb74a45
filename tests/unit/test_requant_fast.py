"""The DSP kernels' requantization (``firmware/include/mp_requant.h``) equals TFLM's
(``mp_fixedpoint.h``, which the zoo tests check against TFLite Micro) on every path: the
SMMULR short path, the 64-bit path, left shifts, the saturating corner and the clamp.
Compiled with the host C compiler, as the host build is."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench_firmware.build import INCLUDE_DIR, find_host_cc

_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include "mp_fixedpoint.h"
#include "mp_requant.h"

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) {
  state ^= state << 13; state ^= state >> 7; state ^= state << 17;
  return (uint32_t)state;
}

int main(void) {
  static const int32_t edges[] = {0, 1, -1, 2, -2, 0x3FFFFFFF, -0x40000000, 0x40000000,
                                  -0x40000001, INT32_MAX, INT32_MIN, INT32_MIN + 1, 12345,
                                  -12345, 1 << 20, -(1 << 20)};
  const int n_edges = (int)(sizeof(edges) / sizeof(edges[0]));
  long bad = 0, n = 0;
  for (long i = 0; i < 4000000; ++i) {
    int32_t acc = (int32_t)next();
    if (i % 4 == 1) acc >>= (next() % 31);
    if (i % 97 == 0) acc = edges[next() % (uint32_t)n_edges];
    int32_t mult = (int32_t)(next() >> 1);
    if (i % 5 == 0) mult = (int32_t)(0x40000000u | (next() >> 2));
    if (i % 1013 == 0) mult = INT32_MIN;
    if (i % 1019 == 0) mult = 0;
    int32_t shift = (int32_t)(next() % 40) - 31;
    if (shift > 8) shift = -(shift % 12);
    const int32_t off = (int32_t)(next() % 256) - 128;
    const int32_t lo = (int32_t)(next() % 64) - 128, hi = 127 - (int32_t)(next() % 64);
    const int32_t want = mp_requantize(acc, mult, shift);
    const int32_t got = mp_requant_any(acc, mult, shift);
    const int8_t want8 = mp_requantize_output(acc, mult, shift, off, lo, hi);
    const int8_t got8 = mp_requant_out_fast(acc, mult, shift, off, lo, hi);
    ++n;
    if (want != got || want8 != got8) {
      if (bad < 5)
        printf("acc=%ld mult=%ld shift=%ld: want %ld got %ld\n", (long)acc, (long)mult,
               (long)shift, (long)want, (long)got);
      ++bad;
    }
  }
  printf("%ld of %ld differ\n", bad, n);
  return bad != 0;
}
"""


@pytest.mark.slow
def test_fast_requantization_equals_tflm(tmp_path: Path) -> None:
    src = tmp_path / "requant.c"
    exe = tmp_path / "requant"
    src.write_text(_PROGRAM)
    subprocess.run([str(find_host_cc()), "-std=c99", "-O2", "-DMP_HOST=1", f"-I{INCLUDE_DIR}",
                    str(src), "-o", str(exe)], check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
