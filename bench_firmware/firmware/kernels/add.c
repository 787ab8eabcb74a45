/* ADD on int8, as TFLM's reference_integer_ops::AddFunc
 * (tensorflow/lite/kernels/internal/reference/integer_ops/add.h): both operands are offset,
 * shifted left by `left_shift` (20), scaled to a common scale, summed, and the sum scaled to
 * the output; every scaling is MultiplyByQuantizedMultiplierSmallerThanOneExp, i.e.
 * mp_requantize with a shift <= 0. TFLM's broadcast path applies the same function per
 * element, so input2 broadcasting over leading dimensions is an index that wraps at
 * input2_elements. The sum of the scaled operands is symmetric, so which operand is
 * "input1" (the full-shape one) does not change a single bit. */
#include "mp_fixedpoint.h"
#include "mp_kernels.h"
#include "mp_requant.h"

static int8_t add_one(const mp_add_params_t *p, int32_t x1, int32_t x2) {
  /* |x + offset| <= 255, so shifting by 20 stays inside int32. */
  const int32_t shifted1 = (x1 + p->input1_offset) * (INT32_C(1) << p->left_shift);
  const int32_t shifted2 = (x2 + p->input2_offset) * (INT32_C(1) << p->left_shift);
  const int32_t scaled1 = mp_requantize(shifted1, p->input1_mult, p->input1_shift);
  const int32_t scaled2 = mp_requantize(shifted2, p->input2_mult, p->input2_shift);
  const int32_t raw = mp_requantize(scaled1 + scaled2, p->output_mult, p->output_shift) +
                      p->output_offset;
  return (int8_t)mp_clamp(raw, p->act_min, p->act_max);
}

/* ---- DSP path ------------------------------------------------------------------------
 * The same three MultiplyByQuantizedMultiplierSmallerThanOneExp steps without a branch or a
 * 64-bit product per element. With left_shift <= 20 every value that is scaled stays below
 * 2^30 in magnitude (|x + offset| <= 255, so the shifted operands are below 2^28, the scaled
 * ones no larger, their sum below 2^29), which is the range where SMMULR of twice the value
 * is TFLM's rounding doubling high multiply (mp_requant.h). The rounding right shift by
 * e >= 0 is (y + half + (y < 0 ? sign : 0)) >> e with half = 2^e / 2 and sign = -1 for
 * e >= 1, 0 for e = 0 (where the shift is the identity): exact, as in mp_requant.h. */
typedef struct {
  int32_t mult, right, half, sign;
} add_scale_t;

static void add_scale_init(add_scale_t *a, int32_t mult, int32_t shift) {
  a->mult = mult;
  a->right = -shift;
  a->half = (int32_t)((UINT32_C(1) << a->right) >> 1);
  a->sign = a->right > 0 ? -1 : 0;
}

static inline int32_t add_scale(const add_scale_t *a, int32_t v) {
  const int32_t y = mp_smmulr((int32_t)((uint32_t)v << 1), a->mult);
  return (y + a->half + ((y >> 31) & a->sign)) >> a->right;
}

static void add_dsp(const mp_add_params_t *p, const int8_t *in1, const int8_t *in2,
                    int8_t *out, uint32_t n, uint32_t n2) {
  add_scale_t s1, s2, so;
  add_scale_init(&s1, p->input1_mult, p->input1_shift);
  add_scale_init(&s2, p->input2_mult, p->input2_shift);
  add_scale_init(&so, p->output_mult, p->output_shift);
  const int32_t ls = p->left_shift;
  const int32_t off1 = p->input1_offset, off2 = p->input2_offset, off_out = p->output_offset;
  const int32_t lo = p->act_min, hi = p->act_max;
  for (uint32_t base = 0; base < n; base += n2) {
    for (uint32_t j = 0; j < n2; ++j) {
      const int32_t a = add_scale(&s1, (in1[base + j] + off1) << ls);
      const int32_t b = add_scale(&s2, (in2[j] + off2) << ls);
      int32_t v = add_scale(&so, a + b) + off_out;
      v = v < lo ? lo : v;
      v = v > hi ? hi : v;
      out[base + j] = (int8_t)v;
    }
  }
}

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* The per-element loop of the table path when input2 does not broadcast and the output shift
 * is a right shift of 1..22 by a multiplier >= 0, hand-scheduled (GCC spills its operands to
 * the stack): two LDRSB, two table loads, the sum doubled, SMMLAR adding the rounding constant
 * with the output offset folded in, k = half + (offset << right) (exact: offset << right is a
 * multiple of 2^right; |y| < 2^29 leaves room), the tie term from the sum's sign (equal to
 * y's for the reason given in kernels/requant_row.c), the shift, the clamp, STRB. */
#define ADD_LUT_LOOP(CLAMP)                                                              \
  __asm__ volatile(                                                                      \
      "1:\n\t"                                                                           \
      "ldrsb  r8, [%[a]], #1\n\t"                                                        \
      "ldrsb  r9, [%[b]], #1\n\t"                                                        \
      "ldr    r8, [%[t1], r8, lsl #2]\n\t"                                               \
      "ldr    r9, [%[t2], r9, lsl #2]\n\t"                                               \
      "add    r8, r8, r9\n\t"                                                            \
      "lsl    r9, r8, #1\n\t"                                                            \
      "smmlar r9, r9, %[m], %[k]\n\t"                                                    \
      "add    r9, r9, r8, asr #31\n\t"                                                   \
      "asr    r9, r9, %[r]\n\t"                                                          \
      CLAMP                                                                              \
      "strb   r9, [%[o]], #1\n\t"                                                        \
      "cmp    %[o], %[end]\n\t"                                                          \
      "bne    1b\n\t"                                                                    \
      : [a] "+r"(a), [b] "+r"(b), [o] "+r"(o)                                            \
      : [end] "r"(end), [t1] "r"(t1), [t2] "r"(t2), [m] "r"(m), [k] "r"(k), [r] "r"(r), \
        [lo] "r"(lo), [hi] "r"(hi)                                                       \
      : "r8", "r9", "cc", "memory")

static void add_lut_flat(const int8_t *a, const int8_t *b, int8_t *o, uint32_t n,
                         const int32_t *t1, const int32_t *t2, int32_t m, int32_t k, int32_t r,
                         int32_t lo, int32_t hi) {
  const int8_t *end = o + n;
  if (lo == -128 && hi == 127) {
    ADD_LUT_LOOP("ssat   r9, #8, r9\n\t");
  } else {
    ADD_LUT_LOOP("cmp    r9, %[lo]\n\t"
                 "it     lt\n\t"
                 "movlt  r9, %[lo]\n\t"
                 "cmp    r9, %[hi]\n\t"
                 "it     gt\n\t"
                 "movgt  r9, %[hi]\n\t");
  }
}
#define ADD_LUT_FLAT 1
#else
#define ADD_LUT_FLAT 0
#endif

/* With the lookup tables (scratch from the compiler, bench_firmware/ops/add.py, for ADDs of at
 * least 256 outputs): the first two scalings depend on one int8 code each, so they are
 * computed once for all 256 codes of each input, with add_scale() itself; per element two
 * table loads replace them, and only the output scaling is left. Same integers, bit for bit. */
static void add_dsp_lut(const mp_add_params_t *p, const int8_t *in1, const int8_t *in2,
                        int8_t *out, uint32_t n, uint32_t n2, int32_t *lut) {
  add_scale_t s1, s2, so;
  add_scale_init(&s1, p->input1_mult, p->input1_shift);
  add_scale_init(&s2, p->input2_mult, p->input2_shift);
  add_scale_init(&so, p->output_mult, p->output_shift);
  const int32_t ls = p->left_shift;
  for (int32_t x = -128; x < 128; ++x) {
    lut[x + 128] = add_scale(&s1, (x + p->input1_offset) << ls);
    lut[x + 384] = add_scale(&s2, (x + p->input2_offset) << ls);
  }
  const int32_t *t1 = lut + 128, *t2 = lut + 384;
  const int32_t off_out = p->output_offset, lo = p->act_min, hi = p->act_max;
  if (ADD_LUT_FLAT && n2 == n && n > 0 && so.right >= 1 && so.right <= 22 && so.mult >= 0) {
#if ADD_LUT_FLAT
    const int32_t k = so.half + (int32_t)((uint32_t)off_out << so.right);
    add_lut_flat(in1, in2, out, n, t1, t2, so.mult, k, so.right, lo, hi);
#endif
    return;
  }
  for (uint32_t base = 0; base < n; base += n2) {
    const int8_t *a = in1 + base;
    int8_t *o = out + base;
    for (uint32_t j = 0; j < n2; ++j) {
      int32_t v = add_scale(&so, t1[a[j]] + t2[in2[j]]) + off_out;
      v = v < lo ? lo : v;
      v = v > hi ? hi : v;
      o[j] = (int8_t)v;
    }
  }
}

mp_status_t mp_op_add(const mp_op_ctx_t *ctx) {
  const mp_add_params_t *p = (const mp_add_params_t *)ctx->params;
  if (p == 0 || p->input1_slot > 1 || p->input2_elements == 0 || p->left_shift < 0 ||
      p->left_shift > 23)
    return MP_ERR_OP;
  const uint32_t n_needed = p->input2_const_off ? 1u : 2u;
  if (ctx->n_inputs != n_needed || p->input1_slot >= n_needed) return MP_ERR_OP;
  const int8_t *in1 = (const int8_t *)ctx->input_data[p->input1_slot];
  const int8_t *in2 = p->input2_const_off
                          ? MP_PLAN_AT(ctx, int8_t, p->input2_const_off)
                          : (const int8_t *)ctx->input_data[1u - p->input1_slot];
  const uint32_t n = ctx->output->bytes;
  const uint32_t n2 = p->input2_elements;
  if (ctx->input[p->input1_slot]->bytes != n || n % n2 != 0) return MP_ERR_OP;
  if (!p->input2_const_off && ctx->input[1u - p->input1_slot]->bytes != n2) return MP_ERR_OP;
  int8_t *out = (int8_t *)ctx->output_data;
  if (ctx->path == MP_KERNELS_DSP && p->left_shift <= 20 && p->input1_shift <= 0 &&
      p->input1_shift >= -31 && p->input2_shift <= 0 && p->input2_shift >= -31 &&
      p->output_shift <= 0 && p->output_shift >= -31) {
    int32_t *lut = p->scratch_bytes >= 2u * 256u * sizeof(int32_t)
                       ? (int32_t *)mp_scratch(ctx, p->scratch_off, p->scratch_bytes)
                       : 0;
    if (lut != 0)
      add_dsp_lut(p, in1, in2, out, n, n2, lut);
    else
      add_dsp(p, in1, in2, out, n, n2);
    return MP_OK;
  }
  uint32_t j = 0;
  for (uint32_t i = 0; i < n; ++i) {
    out[i] = add_one(p, in1[i], in2[j]);
    if (++j == n2) j = 0;
  }
  return MP_OK;
}
