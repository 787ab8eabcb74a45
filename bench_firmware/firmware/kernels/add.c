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

typedef struct {
  const int8_t *a, *b; /* +0, +4 */
  int8_t *o;           /* +8 */
  const int8_t *end;   /* +12 */
  const int32_t *t1;   /* +16, 2 * scaled code, indexed by the signed code */
  const int32_t *t2;   /* +20 */
  int32_t m, k, r;     /* +24 .. +32 */
} add_flat_t;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* The per-element loop of the table path when input2 does not broadcast, the output shift is
 * a right shift of 1..22 by a multiplier >= 0 and the clamp's top is 127, hand-scheduled (the
 * fourteen values need every register, which GCC cannot give inline assembly): two elements a
 * pass, their four LDRSB and four table loads neighbours (Cortex-M4: a load after a load
 * pipelines, DDI 0439B §3.3.2), the tables holding twice the scaled codes so the sum is
 * already doubled; SMMLAR adds the rounding constant with the output offset folded in,
 * k = half + (offset << right) (exact: offset << right is a multiple of 2^right; |y| < 2^29
 * leaves room); the tie term from the sum's sign (equal to y's for the reason given in
 * kernels/requant_row.c), the shift, SSAT #8, STRB; a clamp's bottom above -128 is a second
 * pass (the ReLU outputs ADD fuses mostly have zero point -128 and need none). An even count. */
#define ADD_ONE_OUT(sum, y)                \
  "smmlar " y ", " sum ", r6, r7\n\t"      \
  "add    " y ", " y ", " sum ", asr #31\n\t" \
  "asr    " y ", " y ", r12\n\t"            \
  "ssat   " y ", #8, " y "\n\t"
__attribute__((naked, noinline)) static void add_lut_flat(const add_flat_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "ldr    r12, [r0, #32]\n\t"
      "ldm    r0, {r0-r7}\n\t"
      "1:\n\t"
      "ldrsb  r8, [r0], #1\n\t"
      "ldrsb  r9, [r1], #1\n\t"
      "ldrsb  r10, [r0], #1\n\t"
      "ldrsb  r11, [r1], #1\n\t"
      "ldr    r8, [r4, r8, lsl #2]\n\t"
      "ldr    r9, [r5, r9, lsl #2]\n\t"
      "ldr    r10, [r4, r10, lsl #2]\n\t"
      "ldr    r11, [r5, r11, lsl #2]\n\t"
      "add    r8, r8, r9\n\t"
      "add    r10, r10, r11\n\t"
      ADD_ONE_OUT("r8", "r9")
      ADD_ONE_OUT("r10", "r11")
      "strb   r9, [r2], #1\n\t"
      "strb   r11, [r2], #1\n\t"
      "cmp    r2, r3\n\t"
      "bne    1b\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#else
/* The host build: the same loop in C, so the tests run its rules (an even count, SSAT's
 * range, the second pass) on the host too. */
static void add_lut_flat(const add_flat_t *s) {
  const int8_t *a = s->a, *b = s->b;
  for (int8_t *o = s->o; o != s->end; ++o, ++a, ++b) {
    const int32_t sum = s->t1[*a] + s->t2[*b];
    const int32_t v = (mp_smmulr(sum, s->m) + s->k + (sum >> 31)) >> s->r;
    *o = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
  }
}
#endif

/* With the lookup tables (scratch from the compiler, bench_firmware/ops/add.py, for ADDs of at
 * least 256 outputs): the first two scalings depend on one int8 code each, so they are
 * computed once for all 256 codes of each input, with add_scale() itself, and kept doubled
 * (|2 * scaled| < 2^29: room to spare); per element two table loads replace them, and only the
 * output scaling is left. Same integers, bit for bit. */
static void add_dsp_lut(const mp_add_params_t *p, const int8_t *in1, const int8_t *in2,
                        int8_t *out, uint32_t n, uint32_t n2, int32_t *lut) {
  add_scale_t s1, s2, so;
  add_scale_init(&s1, p->input1_mult, p->input1_shift);
  add_scale_init(&s2, p->input2_mult, p->input2_shift);
  add_scale_init(&so, p->output_mult, p->output_shift);
  const int32_t ls = p->left_shift;
  for (int32_t x = -128; x < 128; ++x) {
    lut[x + 128] = 2 * add_scale(&s1, (x + p->input1_offset) << ls);
    lut[x + 384] = 2 * add_scale(&s2, (x + p->input2_offset) << ls);
  }
  const int32_t *t1 = lut + 128, *t2 = lut + 384;
  const int32_t off_out = p->output_offset, lo = p->act_min, hi = p->act_max;
  uint32_t done = 0;
  if (n2 == n && n >= 2 && so.right >= 1 && so.right <= 22 && so.mult >= 0 && hi == 127 &&
      lo >= -128) {
    done = n & ~1u;
    const add_flat_t f = {in1, in2, out, out + done, t1, t2, so.mult,
                          so.half + (int32_t)((uint32_t)off_out << so.right), so.right};
    add_lut_flat(&f);
    if (lo > -128)
      for (uint32_t i = 0; i < done; ++i) out[i] = out[i] < lo ? (int8_t)lo : out[i];
  }
  for (uint32_t base = 0; base < n; base += n2) {
    const int8_t *a = in1 + base;
    int8_t *o = out + base;
    for (uint32_t j = base < done ? done - base : 0; j < n2; ++j) {
      int32_t v = add_scale(&so, (t1[a[j]] + t2[in2[j]]) >> 1) + off_out;
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
