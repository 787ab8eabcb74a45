"""The DSP kernels' requantization (``firmware/include/mp_requant.h``) equals TFLM's
(``mp_fixedpoint.h``, which the zoo tests check against TFLite Micro) on every path: the
SMMULR short path, the 64-bit path, left shifts, the saturating corner and the clamp.
Compiled with the host C compiler, as the host build is."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench_firmware.build import INCLUDE_DIR, find_host_cc

# Both programs' headers and their xorshift generator.
_PRELUDE = r"""
#include <stdint.h>
#include <stdio.h>
#include "mp_fixedpoint.h"
#include "mp_requant.h"

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) {
  state ^= state << 13; state ^= state >> 7; state ^= state << 17;
  return (uint32_t)state;
}
"""

_PROGRAM = _PRELUDE + r"""
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


_ROWS_PROGRAM = _PRELUDE + r"""
#define N 37
int main(void) {
  int32_t mult[N], shift[N], bias[N], table[3 * N], acc[2 * N], quad[2 * N];
  int8_t out[2 * N], out0[N], out1[N];
  long bad = 0, fast = 0, rows = 0;
  for (long t = 0; t < 20000; ++t) {
    /* k products of |w| <= 128 and |x + offset| <= 255 per accumulator, as the kernels'. */
    const int32_t k = (t % 7 == 0) ? 32000 : (int32_t)(next() % 5000) + 1;
    const int32_t room = (INT32_C(1) << 30) - 32640 * k;
    const int32_t off = (int32_t)(next() % 256) - 128;
    const int full = t % 5 != 0;
    const int32_t lo = full ? -128 : (int32_t)(next() % 64) - 128;
    const int32_t hi = full ? 127 : 127 - (int32_t)(next() % 64);
    for (int c = 0; c < N; ++c) {
      mult[c] = (int32_t)(0x40000000u | (next() >> 2));
      shift[c] = -(int32_t)(next() % 22) - 1;             /* -1 .. -22: the folded range */
      if (t % 11 == 0 && c == 3) shift[c] = -23;           /* outside it: the general path */
      if (t % 13 == 0 && c == 5) shift[c] = 1;
      /* Mostly accumulators whose output lands inside the int8 range (|acc| within a few
       * hundred times 2^right), where every rounding bit shows; some at the proved bound. */
      const int32_t right = shift[c] < 0 ? -shift[c] : 0, span = 32640 * k;
      const int32_t near = (int32_t)(300u << right) < span ? (int32_t)(300u << right) : span;
      bias[c] = (int32_t)(next() % (uint32_t)(near / 4 + 1)) * ((next() & 1) ? 1 : -1);
      if (t % 17 == 0 && c == 7) bias[c] = room;           /* the bound fails: general path */
      for (int p = 0; p < 2; ++p) {
        int32_t sum = (int32_t)(next() % (2u * (uint32_t)near + 1u)) - near;
        if (next() % 8 == 0) sum = (next() & 1) ? span : -span;
        acc[p * N + c] = bias[c] + sum;
      }
    }
    for (int q = 0; q < N / 2; ++q)
      for (int p = 0; p < 2; ++p) {
        quad[4 * q + 2 * p] = acc[p * N + 2 * q];
        quad[4 * q + 2 * p + 1] = acc[p * N + 2 * q + 1];
      }
    quad[4 * (N / 2)] = acc[N - 1];
    quad[4 * (N / 2) + 1] = acc[2 * N - 1];
    mp_requant_t rq;
    mp_requant_init(&rq, mult, shift, N, off, lo, hi, table, bias, k);
    fast += rq.fast;
    ++rows;
    mp_requant_rows2(&rq, acc, out, N);
    mp_requant_pairs(&rq, quad, out0, out1, N);
    int32_t cols[2 * N];
    int8_t out_cols[2 * N];
    for (int c = 0; c < N; ++c) {
      cols[2 * c] = acc[c];
      cols[2 * c + 1] = acc[N + c];
    }
    mp_requant_cols(&rq, cols, 2, out_cols, N, 2, N);
    for (int p = 0; p < 2; ++p)
      for (int c = 0; c < N; ++c) {
        const int8_t want = mp_requantize_output(acc[p * N + c], mult[c], shift[c], off, lo, hi);
        const int8_t got_row = out[p * N + c], got_pair = p ? out1[c] : out0[c];
        if (want != got_row || want != got_pair || want != out_cols[p * N + c]) {
          if (bad < 5)
            printf("t=%ld c=%d acc=%ld shift=%ld off=%ld: want %d rows2 %d pairs %d\n", t, c,
                   (long)acc[p * N + c], (long)shift[c], (long)off, want, got_row, got_pair);
          ++bad;
        }
      }
  }
  printf("%ld differ; fast path in %ld of %ld rows\n", bad, fast, rows);
  return bad != 0 || fast == 0 || fast == rows;
}
"""


def test_requant_rows_equal_tflm_on_both_paths(tmp_path: Path) -> None:
    """mp_requant_init() takes the folded short path only where it proved it exact (shifts
    -1..-22, the full int8 clamp, accumulators bounded by the biases and the products' count),
    and rows, pixel pairs, the convolution's pair order and the planar depthwise kernel's
    channel-major columns all give TFLM's bytes, on that path
    and on the general one (the same C as the twins' loops compute; the zoo checks the assembly
    on all four twins)."""
    src = tmp_path / "rows.c"
    exe = tmp_path / "rows"
    src.write_text(_ROWS_PROGRAM)
    kernel = INCLUDE_DIR.parent / "kernels" / "requant_row.c"
    subprocess.run([str(find_host_cc()), "-std=c99", "-O2", "-DMP_HOST=1", f"-I{INCLUDE_DIR}",
                    str(src), str(kernel), "-o", str(exe)], check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
