/* The DSP kernels' requantization: the same integers as mp_requantize() in mp_fixedpoint.h
 * (TFLM MultiplyByQuantizedMultiplier, default double rounding), in fewer instructions.
 *
 * gemmlowp's SaturatingRoundingDoublingHighMul computes (a*b + nudge) / 2^31 truncated toward
 * zero, nudge = 2^30 for a*b >= 0 and 1 - 2^30 otherwise. For a*b < 0 the truncation is a
 * ceiling, and ceil((a*b + 1 - 2^30) / 2^31) = floor((a*b + 1 - 2^30 + 2^31 - 1) / 2^31)
 * = floor((a*b + 2^30) / 2^31): both signs are one arithmetic shift of a*b + 2^30 (SMULL,
 * ADDS, ADC and a funnel shift on the target, no sign test). The saturating case
 * a = b = INT32_MIN is kept. The rounding right shift (RoundingDivideByPOT, ties away from
 * zero) is written with an unsigned mask so a shift of 31 is defined.
 *
 * The common case, shift < 0 (a multiplier below 1) and |acc| < 2^30, is shorter still:
 * floor((v + 2^30) / 2^31) = floor((2v + 2^31) / 2^32) is SMMULR(2 * acc, multiplier) (Armv7-M
 * ARM A7.7.132: the high word of the product, rounded by adding 2^31), exact because 2 * acc
 * does not overflow; |y| < 2^30 then, so the rounding shift by e >= 1 is
 * (y + 2^(e-1) - (y < 0)) >> e without overflow (ties away from zero, as RoundingDivideByPOT).
 * The saturating case needs acc = INT32_MIN and so never takes this path.
 * tests/unit/test_requant_fast.py checks the equality on the host build. */
#ifndef MP_REQUANT_H
#define MP_REQUANT_H

#include <stdint.h>

static inline int32_t mp_high_mul_q31(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  /* >> of a negative int64 is an arithmetic shift on every compiler the firmware uses
   * (GCC, Clang: implementation-defined, documented as sign-extending). */
  return (int32_t)(((int64_t)a * (int64_t)b + (INT64_C(1) << 30)) >> 31);
}

static inline int32_t mp_requant_fast(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  const int32_t y = mp_high_mul_q31((int32_t)((uint32_t)x << left), multiplier);
  const int32_t mask = (int32_t)((UINT32_C(1) << right) - 1u);
  const int32_t threshold = (mask >> 1) + (y < 0 ? 1 : 0);
  return (y >> right) + ((y & mask) > threshold ? 1 : 0);
}

/* (a * b + 2^31) >> 32: SMMULR. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline int32_t mp_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else
static inline int32_t mp_smmulr(int32_t a, int32_t b) {
  return (int32_t)(((int64_t)a * (int64_t)b + (INT64_C(1) << 31)) >> 32);
}
#endif

/* mp_requantize(): the short path where it applies, else mp_requant_fast(). */
static inline int32_t mp_requant_any(int32_t acc, int32_t multiplier, int32_t shift) {
  if (shift < 0 && (uint32_t)acc + UINT32_C(0x40000000) < UINT32_C(0x80000000)) {
    const int32_t right = -shift;
    const int32_t y = mp_smmulr((int32_t)((uint32_t)acc << 1), multiplier);
    return (y + (INT32_C(1) << (right - 1)) + (y >> 31)) >> right;
  }
  return mp_requant_fast(acc, multiplier, shift);
}

/* mp_requantize_output() with the fast requantization. */
static inline int8_t mp_requant_out_fast(int32_t acc, int32_t multiplier, int32_t shift,
                                         int32_t output_offset, int32_t act_min,
                                         int32_t act_max) {
  int32_t v = mp_requant_any(acc, multiplier, shift) + output_offset;
  v = v < act_min ? act_min : v;
  v = v > act_max ? act_max : v;
  return (int8_t)v;
}

/* A layer's output stage: per-channel multipliers and shifts, output offset, clamp. */
typedef struct {
  const int32_t *mult, *shift;
  int32_t *table;  /* {multiplier, right, bias} per channel, in SRAM: filled when `fast` */
  int32_t output_offset, act_min, act_max;
  int fast;       /* the short path holds for every channel and accumulator (mp_requant_init) */
  int full_range; /* act_min == -128 and act_max == 127: the clamp is SSAT #8 */
} mp_requant_t;

/* Words of table per channel: {multiplier, right = -shift, half + (output_offset << right)}. */
#define MP_REQUANT_TABLE_WORDS 3

/* One output from a channel's table words t = {multiplier, right, half + (offset << right)}
 * (`fast` tables only): the target loops' arithmetic in C, tie term from acc's sign as theirs
 * (kernels/requant_row.c, file comment). The host build's loops use it; the target's are
 * assembly. */
static inline int8_t mp_requant_table_out(const int32_t *t, int32_t acc) {
  const int32_t y = mp_smmulr((int32_t)((uint32_t)acc << 1), t[0]);
  int32_t v = (y + t[2] + (acc >> 31)) >> t[1];
  v = v < -128 ? -128 : v;
  v = v > 127 ? 127 : v;
  return (int8_t)v;
}

/* The target's requantization of the accumulator in register `a`, in place, for the kernels
 * that fuse it into their own loops: the table words in registers m (multiplier), r (right)
 * and k (rounding constant), t scratch; the same five instructions as kernels/requant_row.c.
 * MP_RQ_INPLACE_ASM takes the table in r8, r9, r10 and r12 as scratch. */
#define MP_RQ_REGS_ASM(a, m, r, k, t)      \
  "lsl    " t ", " a ", #1\n\t"            \
  "smmlar " t ", " t ", " m ", " k "\n\t"  \
  "add    " t ", " t ", " a ", asr #31\n\t" \
  "asr    " t ", " t ", " r "\n\t"          \
  "ssat   " a ", #8, " t "\n\t"
#define MP_RQ_INPLACE_ASM(a) MP_RQ_REGS_ASM(a, "r8", "r9", "r10", "r12")
/* Two accumulators a and b, as two MP_RQ_REGS_ASM chains step by step (a's step, then b's),
 * t and u their scratch: the Cortex-M7 issues each pair of independent steps together. */
#define MP_RQ2_REGS_ASM(a, b, m, r, k, t, u)        \
  "lsl    " t ", " a ", #1\n\t"                     \
  "lsl    " u ", " b ", #1\n\t"                     \
  "smmlar " t ", " t ", " m ", " k "\n\t"           \
  "smmlar " u ", " u ", " m ", " k "\n\t"           \
  "add    " t ", " t ", " a ", asr #31\n\t"         \
  "add    " u ", " u ", " b ", asr #31\n\t"         \
  "asr    " t ", " t ", " r "\n\t"                  \
  "asr    " u ", " u ", " r "\n\t"                  \
  "ssat   " a ", #8, " t "\n\t"                     \
  "ssat   " b ", #8, " u "\n\t"

/* Fills `rq` for `channels` channels, once per invocation of a layer. `bias` and `k` bound the
 * accumulators: acc = bias + sum of k products of an int8 weight (|w| <= 128) and an
 * offset input (|x + offset| <= 255). When every |bias| + 32640 * k < 2^30 (so 2 * acc never
 * overflows), every multiplier is >= 0, every shift is in [-22, -1] (so the output offset
 * folds into the rounding
 * constant without overflow: |y| < 2^30, |offset << 22| <= 2^29) and the clamp is the full
 * int8 range, `fast` is set and `table` (3 * channels words of arena scratch) holds
 * {multiplier, right, half + (output_offset << right)}: then
 * out = SSAT8((SMMULR(2 * acc, multiplier) + that + (y < 0 ? -1 : 0)) >> right), the same
 * integer as mp_requant_out_fast(), with no overflow test per element. Otherwise the rows go
 * through mp_requant_out_fast() element by element. */
void mp_requant_init(mp_requant_t *rq, const int32_t *mult, const int32_t *shift,
                     int32_t channels, int32_t output_offset, int32_t act_min,
                     int32_t act_max, int32_t *table, const int32_t *bias, int32_t k);

/* out[c] = mp_requant_out_fast(acc[c], mult[c], shift[c], ...) for channels c < n. */
void mp_requant_row(const mp_requant_t *rq, const int32_t *acc, int8_t *out, int32_t n);

/* Two rows of n: acc[0..n) to out[0..n) and acc[n..2n) to out[n..2n), as two
 * mp_requant_row() calls give them, in fewer cycles (one table load per channel). */
void mp_requant_rows2(const mp_requant_t *rq, const int32_t *acc, int8_t *out, int32_t n);

/* Two pixels' accumulators in the convolution's pair order: for each pair of channels
 * (2q, 2q + 1), four words {pixel 0 ch 2q, pixel 0 ch 2q + 1, pixel 1 ch 2q, pixel 1 ch 2q + 1};
 * an odd last channel after them as {pixel 0, pixel 1}. Pixel 0's outputs go to out0[0..n),
 * pixel 1's to out1[0..n) (out1 may equal out0 when both pixels are the same one). */
void mp_requant_pairs(const mp_requant_t *rq, const int32_t *acc, int8_t *out0, int8_t *out1,
                      int32_t n);

/* Accumulators kept channel by channel: acc[c * stride + x] for pixel x < n_pix of channel
 * c < channels, to out[x * pixel_bytes + c] (a row or column of n_pix NHWC pixels). */
void mp_requant_cols(const mp_requant_t *rq, const int32_t *acc, int32_t stride, int8_t *out,
                     int32_t channels, int32_t n_pix, int32_t pixel_bytes);

#endif /* MP_REQUANT_H */
