/* A row of int32 accumulators to int8 outputs (mp_requant.h). Kept out of line so the
 * loop, not the kernel around it, owns the registers.
 *
 * The loop takes the short path of mp_requant_any() (its comment has the proof) for layers
 * whose shifts are all negative, reading {multiplier, right} pairs from the SRAM table
 * mp_requant_init() filled: SMMULR of 2 * acc, valid while 2 * acc does not overflow
 * (ADDS sets V exactly then, Armv7-M ARM A7.7.4), then the rounding shift by right = -shift
 * as (y + (2^right >> 1) + (y < 0 ? -1 : 0)) >> right. On the target the loop is
 * hand-scheduled and stops before the first element that overflows; C does that one with
 * the general path and the loop resumes after it. A clamp to the whole int8 range is one
 * SSAT #8 (A7.7.151). */
#include <stdint.h>

#include "mp_requant.h"

void mp_requant_init(mp_requant_t *rq, const int32_t *mult, const int32_t *shift,
                     int32_t channels, int32_t output_offset, int32_t act_min,
                     int32_t act_max, int32_t *table) {
  rq->mult = mult;
  rq->shift = shift;
  rq->table = table;
  rq->output_offset = output_offset;
  rq->act_min = act_min;
  rq->act_max = act_max;
  rq->full_range = act_min == -128 && act_max == 127;
  int all_right = 1;
  for (int32_t c = 0; c < channels; ++c) all_right &= shift[c] < 0;
  rq->all_right = all_right;
  if (all_right) {
    for (int32_t c = 0; c < channels; ++c) {
      table[2 * c] = mult[c];
      table[2 * c + 1] = -shift[c];
    }
  }
}

static int8_t requant_one(const mp_requant_t *rq, int32_t acc, int32_t c) {
  int32_t v = mp_requant_fast(acc, rq->mult[c], rq->shift[c]) + rq->output_offset;
  v = v < rq->act_min ? rq->act_min : v;
  v = v > rq->act_max ? rq->act_max : v;
  return (int8_t)v;
}

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* The loop body up to the clamp; CLAMP finishes r11. */
#define RQ_LOOP(CLAMP)                                                                  \
  __asm__ volatile(                                                                     \
      "1:\n\t"                                                                          \
      "ldr    r8, [%[a]], #4\n\t"                                                       \
      "ldrd   r9, r10, [%[m]], #8\n\t" /* multiplier, right >= 1 */                     \
      "adds   r8, r8, r8\n\t" /* 2 * acc; V: it overflowed */                           \
      "bvs    2f\n\t"                                                                   \
      "smmulr r9, r8, r9\n\t"    /* y */                                                \
      "lsl    r11, %[one], r10\n\t"                                                     \
      "add    r11, r9, r11, lsr #1\n\t"                                                 \
      "add    r11, r11, r9, asr #31\n\t"                                                \
      "asr    r11, r11, r10\n\t"                                                        \
      "add    r11, r11, %[off]\n\t"                                                     \
      CLAMP                                                                             \
      "strb   r11, [%[o]], #1\n\t"                                                      \
      "cmp    %[a], %[end]\n\t"                                                         \
      "bne    1b\n\t"                                                                   \
      "b      3f\n\t"                                                                   \
      "2:\n\t" /* undo the element's post-increments */                                 \
      "subs   %[a], %[a], #4\n\t"                                                       \
      "subs   %[m], %[m], #8\n\t"                                                       \
      "3:\n\t"                                                                          \
      : [a] "+r"(a_p), [o] "+r"(o_p), [m] "+r"(m_p)                                     \
      : [end] "r"(a_end), [off] "r"(off), [lo] "r"(lo), [hi] "r"(hi), [one] "r"(one)    \
      : "r8", "r9", "r10", "r11", "cc", "memory")

/* The loop's registers, from channel c (explicit: GCC finds no allocation for 13 operands
 * by itself). One expansion per function: GCC 12 does not terminate on two asm statements
 * sharing these register variables in one function. */
#define RQ_SETUP                                                   \
  register const int32_t *a_p __asm__("r0") = acc + c;             \
  register int8_t *o_p __asm__("r1") = out + c;                    \
  register const int32_t *a_end __asm__("r2") = acc + n;           \
  register const int32_t *m_p __asm__("r3") = rq->table + 2 * c;   \
  register int32_t off __asm__("r5") = rq->output_offset;          \
  register int32_t lo __asm__("r6") = rq->act_min;                 \
  register int32_t hi __asm__("r7") = rq->act_max;                 \
  register int32_t one __asm__("lr") = 1

__attribute__((noinline)) static int32_t requant_run_ssat(const mp_requant_t *rq,
                                                          const int32_t *acc, int8_t *out,
                                                          int32_t c, int32_t n) {
  RQ_SETUP;
  RQ_LOOP("ssat   r11, #8, r11\n\t");
  return (int32_t)(a_p - acc);
}

__attribute__((noinline)) static int32_t requant_run_clamp(const mp_requant_t *rq,
                                                           const int32_t *acc, int8_t *out,
                                                           int32_t c, int32_t n) {
  RQ_SETUP;
  RQ_LOOP("cmp    r11, %[lo]\n\t"
          "it     lt\n\t"
          "movlt  r11, %[lo]\n\t"
          "cmp    r11, %[hi]\n\t"
          "it     gt\n\t"
          "movgt  r11, %[hi]\n\t");
  return (int32_t)(a_p - acc);
}

/* Requantizes channels [c, n) while no accumulator overflows the short path; returns the
 * channel it stopped at. */
static int32_t requant_run(const mp_requant_t *rq, const int32_t *acc, int8_t *out,
                           int32_t c, int32_t n) {
  if (c >= n) return c;
  return rq->full_range ? requant_run_ssat(rq, acc, out, c, n)
                        : requant_run_clamp(rq, acc, out, c, n);
}
#else
static int32_t requant_run(const mp_requant_t *rq, const int32_t *acc, int8_t *out,
                           int32_t c, int32_t n) {
  for (; c < n; ++c) {
    const int32_t a = acc[c], right = rq->table[2 * c + 1];
    if ((uint32_t)a + UINT32_C(0x40000000) >= UINT32_C(0x80000000)) break;
    const int32_t y = mp_smmulr((int32_t)((uint32_t)a << 1), rq->table[2 * c]);
    int32_t v = ((y + (int32_t)((UINT32_C(1) << right) >> 1) + (y >> 31)) >> right) +
                rq->output_offset;
    v = v < rq->act_min ? rq->act_min : v;
    v = v > rq->act_max ? rq->act_max : v;
    out[c] = (int8_t)v;
  }
  return c;
}
#endif

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* Two pixels' rows at once (acc1 = acc0 + n, out1 = out0 + n), full int8 range: each
 * channel's {multiplier, right} and rounding half are loaded and made once for both pixels,
 * as is the loop's control; the arithmetic per output is the short path above, SSAT #8 the
 * clamp. Stops before a channel where either accumulator overflows the short path. */
__attribute__((noinline)) static int32_t requant_run2_ssat(const mp_requant_t *rq,
                                                           const int32_t *acc, int8_t *out,
                                                           int32_t c, int32_t n) {
  register const int32_t *a_p __asm__("r0") = acc + c;
  register int8_t *o_p __asm__("r1") = out + c;
  register const int32_t *a_end __asm__("r2") = acc + n;
  register const int32_t *m_p __asm__("r3") = rq->table + 2 * c;
  register int32_t a_stride __asm__("r4") = 4 * n;
  register int32_t off __asm__("r5") = rq->output_offset;
  register int32_t o_stride __asm__("r6") = n;
  register int32_t one __asm__("lr") = 1;
  __asm__ volatile(
      "1:\n\t"
      "ldr    r8, [%[a], %[as]]\n\t"   /* pixel 1's accumulator */
      "ldrd   r9, r10, [%[m]], #8\n\t" /* multiplier, right >= 1 */
      "ldr    r7, [%[a]], #4\n\t"      /* pixel 0's */
      "adds   r8, r8, r8\n\t"
      "bvs    2f\n\t"
      "adds   r7, r7, r7\n\t"
      "bvs    2f\n\t"
      "lsl    r12, %[one], r10\n\t"
      "lsr    r12, r12, #1\n\t"        /* half */
      "smmulr r7, r7, r9\n\t"
      "smmulr r8, r8, r9\n\t"
      "add    r11, r7, r12\n\t"
      "add    r11, r11, r7, asr #31\n\t"
      "asr    r11, r11, r10\n\t"
      "add    r11, r11, %[off]\n\t"
      "ssat   r11, #8, r11\n\t"
      "strb   r11, [%[o]]\n\t"         /* pixel 0's output */
      "add    r11, r8, r12\n\t"
      "add    r11, r11, r8, asr #31\n\t"
      "asr    r11, r11, r10\n\t"
      "add    r11, r11, %[off]\n\t"
      "ssat   r11, #8, r11\n\t"
      "strb   r11, [%[o], %[os]]\n\t"     /* pixel 1's */
      "add    %[o], %[o], #1\n\t"
      "cmp    %[a], %[end]\n\t"
      "bne    1b\n\t"
      "b      3f\n\t"
      "2:\n\t" /* undo the channel's post-increments */
      "subs   %[a], %[a], #4\n\t"
      "subs   %[m], %[m], #8\n\t"
      "3:\n\t"
      : [a] "+r"(a_p), [o] "+r"(o_p), [m] "+r"(m_p)
      : [end] "r"(a_end), [off] "r"(off), [as] "r"(a_stride), [os] "r"(o_stride),
        [one] "r"(one)
      : "r7", "r8", "r9", "r10", "r11", "r12", "cc", "memory");
  return (int32_t)(a_p - acc);
}
#endif

void mp_requant_rows2(const mp_requant_t *rq, const int32_t *acc, int8_t *out, int32_t n) {
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
  if (rq->all_right && rq->full_range) {
    int32_t c = 0;
    while (c < n) {
      c = requant_run2_ssat(rq, acc, out, c, n);
      if (c < n) {
        out[c] = requant_one(rq, acc[c], c);
        out[n + c] = requant_one(rq, acc[n + c], c);
        ++c;
      }
    }
    return;
  }
#endif
  mp_requant_row(rq, acc, out, n);
  mp_requant_row(rq, acc + n, out + n, n);
}

void mp_requant_row(const mp_requant_t *rq, const int32_t *acc, int8_t *out, int32_t n) {
  if (!rq->all_right) {
    for (int32_t c = 0; c < n; ++c) out[c] = requant_one(rq, acc[c], c);
    return;
  }
  int32_t c = 0;
  while (c < n) {
    c = requant_run(rq, acc, out, c, n);
    if (c < n) {
      out[c] = requant_one(rq, acc[c], c);
      ++c;
    }
  }
}
