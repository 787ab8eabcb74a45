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
