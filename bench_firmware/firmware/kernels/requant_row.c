/* Rows of int32 accumulators to int8 outputs (mp_requant.h). Kept out of line so the loops,
 * not the kernels around them, own the registers.
 *
 * The fast loops apply the short path of mp_requant_any() (its comment has the proof) with the
 * checks moved out of the loop: mp_requant_init() proved from the biases and the products'
 * count that 2 * acc cannot overflow, so no accumulator needs a test, and folded the output
 * offset into the rounding constant, (y + half + s) >> right + offset = (y + half +
 * (offset << right) + s) >> right for s = (y < 0 ? -1 : 0), exact because offset << right is
 * a multiple of 2^right and fits with y in 32 bits for right <= 22. On the target the
 * constant is added by the multiply itself: SMMLAR (Armv7-M ARM A7.7.133) gives
 * k + SMMULR(2 * acc, m) exactly, k * 2^32 being a multiple of 2^32. The tie term then takes
 * acc's sign instead of y's: with m >= 0 they differ only when y = 0 and acc < 0, where
 * (k - 1) >> right = k >> right = offset (k = 2^(right-1) + (offset << right), right >= 1).
 * Per output: LSL (2 * acc), SMMLAR, ADD (the tie term), ASR, SSAT #8 (A7.7.151, the full
 * int8 range), STRB. */
#include <stdint.h>

#include "mp_requant.h"

#define RQ_MAX_RIGHT 22
#define RQ_ACC_LIMIT (INT32_C(1) << 30)
#define RQ_PRODUCT_MAX 32640 /* 128 * 255: |w| * |x + offset| */

void mp_requant_init(mp_requant_t *rq, const int32_t *mult, const int32_t *shift,
                     int32_t channels, int32_t output_offset, int32_t act_min,
                     int32_t act_max, int32_t *table, const int32_t *bias, int32_t k) {
  rq->mult = mult;
  rq->shift = shift;
  rq->table = table;
  rq->output_offset = output_offset;
  rq->act_min = act_min;
  rq->act_max = act_max;
  rq->full_range = act_min == -128 && act_max == 127;
  int fast = rq->full_range && k >= 0 && k <= RQ_ACC_LIMIT / RQ_PRODUCT_MAX;
  const int32_t room = RQ_ACC_LIMIT - RQ_PRODUCT_MAX * (fast ? k : 0);
  for (int32_t c = 0; c < channels && fast; ++c) {
    const int32_t b = bias[c];
    fast = shift[c] < 0 && shift[c] >= -RQ_MAX_RIGHT && mult[c] >= 0 && b > -room && b < room;
  }
  rq->fast = fast;
  if (!fast) return;
  for (int32_t c = 0; c < channels; ++c) {
    const int32_t right = -shift[c];
    table[3 * c] = mult[c];
    table[3 * c + 1] = right;
    table[3 * c + 2] = (INT32_C(1) << (right - 1)) + (int32_t)((uint32_t)output_offset << right);
  }
}

static int8_t requant_one(const mp_requant_t *rq, int32_t acc, int32_t c) {
  return mp_requant_out_fast(acc, rq->mult[c], rq->shift[c], rq->output_offset, rq->act_min,
                             rq->act_max);
}

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
#define RQ_ARM 1
/* One output: accumulator in `a`, table word registers m, r, k; result stored by the caller. */
#define RQ_ONE(a, m, r, k)                 \
  "lsl    r12, " a ", #1\n\t"               \
  "smmlar r12, r12, " m ", " k "\n\t"       \
  "add    r12, r12, " a ", asr #31\n\t"     \
  "asr    r12, r12, " r "\n\t"              \
  "ssat   r12, #8, r12\n\t"
#else
#define RQ_ARM 0
#define rq_fast mp_requant_table_out
#endif

void mp_requant_row(const mp_requant_t *rq, const int32_t *acc, int8_t *out, int32_t n) {
  if (!rq->fast) {
    for (int32_t c = 0; c < n; ++c) out[c] = requant_one(rq, acc[c], c);
    return;
  }
#if RQ_ARM
  if (n <= 0) return;
  register const int32_t *a_p __asm__("r0") = acc;
  register int8_t *o_p __asm__("r1") = out;
  register const int32_t *a_end __asm__("r2") = acc + n;
  register const int32_t *t_p __asm__("r3") = rq->table;
  __asm__ volatile(
      "1:\n\t"
      "ldmia  %[t]!, {r5, r6, r7}\n\t"
      "ldr    r4, [%[a]], #4\n\t"
      RQ_ONE("r4", "r5", "r6", "r7")
      "strb   r12, [%[o]], #1\n\t"
      "cmp    %[a], %[end]\n\t"
      "bne    1b\n\t"
      : [a] "+r"(a_p), [o] "+r"(o_p), [t] "+r"(t_p)
      : [end] "r"(a_end)
      : "r4", "r5", "r6", "r7", "r12", "cc", "memory");
#else
  for (int32_t c = 0; c < n; ++c) out[c] = rq_fast(rq->table + 3 * c, acc[c]);
#endif
}

void mp_requant_rows2(const mp_requant_t *rq, const int32_t *acc, int8_t *out, int32_t n) {
  if (!rq->fast) {
    mp_requant_row(rq, acc, out, n);
    mp_requant_row(rq, acc + n, out + n, n);
    return;
  }
#if RQ_ARM
  if (n <= 0) return;
  register const int32_t *a_p __asm__("r0") = acc;
  register int8_t *o_p __asm__("r1") = out;
  register const int32_t *a_end __asm__("r2") = acc + n;
  register const int32_t *t_p __asm__("r3") = rq->table;
  register int32_t a_stride __asm__("r4") = 4 * n;
  register int32_t o_stride __asm__("r5") = n;
  __asm__ volatile(
      "1:\n\t"
      "ldmia  %[t]!, {r6, r7, r8}\n\t"
      "ldr    r10, [%[a], %[as]]\n\t" /* pixel 1's accumulator */
      "ldr    r9, [%[a]], #4\n\t"     /* pixel 0's */
      RQ_ONE("r9", "r6", "r7", "r8")
      "strb   r12, [%[o]]\n\t"         /* pixel 0's output */
      RQ_ONE("r10", "r6", "r7", "r8")
      "strb   r12, [%[o], %[os]]\n\t"
      "add    %[o], %[o], #1\n\t"
      "cmp    %[a], %[end]\n\t"
      "bne    1b\n\t"
      : [a] "+r"(a_p), [o] "+r"(o_p), [t] "+r"(t_p)
      : [end] "r"(a_end), [as] "r"(a_stride), [os] "r"(o_stride)
      : "r6", "r7", "r8", "r9", "r10", "r12", "cc", "memory");
#else
  for (int32_t c = 0; c < n; ++c) {
    out[c] = rq_fast(rq->table + 3 * c, acc[c]);
    out[n + c] = rq_fast(rq->table + 3 * c, acc[n + c]);
  }
#endif
}

void mp_requant_pairs(const mp_requant_t *rq, const int32_t *acc, int8_t *out0, int8_t *out1,
                      int32_t n) {
  const int32_t pairs = n / 2;
  if (!rq->fast) {
    for (int32_t q = 0; q < pairs; ++q, acc += 4) {
      out0[2 * q] = requant_one(rq, acc[0], 2 * q);
      out0[2 * q + 1] = requant_one(rq, acc[1], 2 * q + 1);
      out1[2 * q] = requant_one(rq, acc[2], 2 * q);
      out1[2 * q + 1] = requant_one(rq, acc[3], 2 * q + 1);
    }
    if (n & 1) {
      out0[n - 1] = requant_one(rq, acc[0], n - 1);
      out1[n - 1] = requant_one(rq, acc[1], n - 1);
    }
    return;
  }
#if RQ_ARM
  if (pairs > 0) {
    register const int32_t *a_p __asm__("r0") = acc;
    register int8_t *o0 __asm__("r1") = out0;
    register int8_t *o1 __asm__("r2") = out1;
    register const int32_t *t_p __asm__("r3") = rq->table;
    register const int32_t *a_end __asm__("lr") = acc + 4 * pairs;
    __asm__ volatile(
        "1:\n\t"
        "ldmia  %[a]!, {r4, r5, r6, r7}\n\t" /* p0 c0, p0 c1, p1 c0, p1 c1 */
        "ldmia  %[t]!, {r8, r9, r10}\n\t"
        RQ_ONE("r4", "r8", "r9", "r10")
        "strb   r12, [%[o0]], #1\n\t"
        RQ_ONE("r6", "r8", "r9", "r10")
        "strb   r12, [%[o1]], #1\n\t"
        "ldmia  %[t]!, {r8, r9, r10}\n\t"
        RQ_ONE("r5", "r8", "r9", "r10")
        "strb   r12, [%[o0]], #1\n\t"
        RQ_ONE("r7", "r8", "r9", "r10")
        "strb   r12, [%[o1]], #1\n\t"
        "cmp    %[a], %[end]\n\t"
        "bne    1b\n\t"
        : [a] "+r"(a_p), [o0] "+r"(o0), [o1] "+r"(o1), [t] "+r"(t_p)
        : [end] "r"(a_end)
        : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r12", "cc", "memory");
  }
  if (n & 1) {
    const int32_t *a = acc + 4 * pairs;
    out0[n - 1] = requant_one(rq, a[0], n - 1);
    out1[n - 1] = requant_one(rq, a[1], n - 1);
  }
#else
  for (int32_t q = 0; q < pairs; ++q, acc += 4) {
    const int32_t *t = rq->table + 6 * q;
    out0[2 * q] = rq_fast(t, acc[0]);
    out0[2 * q + 1] = rq_fast(t + 3, acc[1]);
    out1[2 * q] = rq_fast(t, acc[2]);
    out1[2 * q + 1] = rq_fast(t + 3, acc[3]);
  }
  if (n & 1) {
    out0[n - 1] = rq_fast(rq->table + 3 * (n - 1), acc[0]);
    out1[n - 1] = rq_fast(rq->table + 3 * (n - 1), acc[1]);
  }
#endif
}

void mp_requant_cols(const mp_requant_t *rq, const int32_t *acc, int32_t stride, int8_t *out,
                     int32_t channels, int32_t n_pix, int32_t pixel_bytes) {
  for (int32_t c = 0; c < channels; ++c) {
    const int32_t *a = acc + c * stride;
    int8_t *o = out + c;
    if (!rq->fast) {
      for (int32_t x = 0; x < n_pix; ++x) o[x * pixel_bytes] = requant_one(rq, a[x], c);
      continue;
    }
#if RQ_ARM
    /* Two pixels per pass (LDRD of their accumulators), then an odd last one. */
    register const int32_t *a_p __asm__("r0") = a;
    register int8_t *o_p __asm__("r1") = o;
    register const int32_t *a_end __asm__("r2") = a + (n_pix & ~1);
    register int32_t o_stride __asm__("r3") = pixel_bytes;
    register int32_t m __asm__("r5") = rq->table[3 * c];
    register int32_t r __asm__("r6") = rq->table[3 * c + 1];
    register int32_t k __asm__("r7") = rq->table[3 * c + 2];
    if (n_pix >= 2) {
      __asm__ volatile(
          "1:\n\t"
          "ldrd   r4, r8, [%[a]], #8\n\t"
          RQ_ONE("r4", "%[m]", "%[r]", "%[k]")
          "strb   r12, [%[o]]\n\t"
          RQ_ONE("r8", "%[m]", "%[r]", "%[k]")
          "strb   r12, [%[o], %[os]]\n\t"
          "add    %[o], %[o], %[os], lsl #1\n\t"
          "cmp    %[a], %[end]\n\t"
          "bne    1b\n\t"
          : [a] "+r"(a_p), [o] "+r"(o_p)
          : [end] "r"(a_end), [os] "r"(o_stride), [m] "r"(m), [r] "r"(r), [k] "r"(k)
          : "r4", "r8", "r12", "cc", "memory");
    }
    if (n_pix & 1) {
      __asm__ volatile(
          "ldr    r4, [%[a]]\n\t"
          RQ_ONE("r4", "%[m]", "%[r]", "%[k]")
          "strb   r12, [%[o]]\n\t"
          :
          : [a] "r"(a_p), [o] "r"(o_p), [m] "r"(m), [r] "r"(r), [k] "r"(k)
          : "r4", "r12", "memory");
    }
#else
    for (int32_t x = 0; x < n_pix; ++x) o[x * pixel_bytes] = rq_fast(rq->table + 3 * c, a[x]);
#endif
  }
}
