/* SOFTMAX on int8 (output scale 1/256, zero point -128), as TFLM's int8 reference
 * (tensorflow/lite/kernels/internal/reference/softmax.h, "Quantized softmax with int8_t
 * input"), integer only: each difference to the row maximum is scaled into Q5.26, exp() is
 * gemmlowp's exp_on_negative_values, the sum is kept in Q12.19, its reciprocal comes from
 * GetReciprocal (common.h) and gemmlowp's one_over_one_plus_x_for_x_in_0_1.
 *
 * The fixed-point helpers below follow gemmlowp's fixedpoint/fixedpoint.h for the scalar
 * int32 case; the constants are the raw Q0.31 / Q2.29 values that file spells out. */
/* Off the hot path of the networks mcuprof measures (one small layer at the end): compiled for
 * size, which keeps the firmware inside its flash budget (bench_firmware/boards.py). */
#pragma GCC optimize("Os")
#include "mp_fixedpoint.h"
#include "mp_kernels.h"

#define SCALED_DIFF_INTEGER_BITS 5   /* softmax.h kScaledDiffIntegerBits: Q5.26 */
#define ACCUMULATION_INTEGER_BITS 12 /* softmax.h kAccumulationIntegerBits: Q12.19 */

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0: a left shift that
 * saturates instead of overflowing. */
static int32_t sat_shift_left(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)((INT32_C(1) << (31 - exponent)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* Plain int32 addition and subtraction (gemmlowp's Add/Sub); wrap instead of overflow UB. */
static int32_t add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t sub_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

static int32_t mul(int32_t a, int32_t b) { return mp_sat_rounding_doubling_high_mul(a, b); }

/* gemmlowp RoundingHalfSum for int32. */
static int32_t rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp
 * exp_on_interval_between_negative_one_quarter_and_0_excl: Taylor series around -1/8). */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
  const int32_t constant_term = 1895147668;     /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
  const int32_t x = add_wrap(a, INT32_C(1) << 28); /* a + 1/8 */
  const int32_t x2 = mul(x, x);
  const int32_t x3 = mul(x2, x);
  const int32_t x4 = mul(x2, x2);
  const int32_t x4_over_4 = mp_rounding_divide_by_pot(x4, 2);
  const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 = mp_rounding_divide_by_pot(
      add_wrap(mul(add_wrap(x4_over_4, x3), constant_1_over_3), x2), 1);
  return add_wrap(constant_term,
                  mul(constant_term, add_wrap(x, x4_over_24_plus_x3_over_6_plus_x2_over_2)));
}

/* exp(a) for a <= 0 given in Q5.26, result Q0.31 (gemmlowp exp_on_negative_values with
 * tIntegerBits = 5): exp of a mod 1/4 times exp(-2^k) for each set bit k of the rest. */
static int32_t exp_on_negative_values_q5(int32_t a) {
  enum { FRACTIONAL_BITS = 31 - SCALED_DIFF_INTEGER_BITS };
  const int32_t one_quarter = INT32_C(1) << (FRACTIONAL_BITS - 2);
  const int32_t a_mod_quarter_minus_one_quarter = sub_wrap(a & (one_quarter - 1), one_quarter);
  /* Rescale<0> from Q5.26: a saturating left shift by 5. */
  int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
      sat_shift_left(a_mod_quarter_minus_one_quarter, SCALED_DIFF_INTEGER_BITS));
  const int32_t remainder = sub_wrap(a_mod_quarter_minus_one_quarter, a);
  /* GEMMLOWP_EXP_BARREL_SHIFTER(exponent, exp(-2^exponent) in Q0.31), exponent -2..4. */
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                         39332535,   720401,     242};
  for (int k = 0; k < 7; ++k) {
    const int shift = FRACTIONAL_BITS + (k - 2);
    if (remainder & (INT32_C(1) << shift)) result = mul(result, multipliers[k]);
  }
  /* With 5 integer bits no clamp below -32 is needed (gemmlowp applies it above 5). */
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (gemmlowp one_over_one_plus_x_for_x_in_0_1:
 * Newton-Raphson in Q2.29 from 48/17 - 32/17 * d). */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
  const int32_t constant_48_over_17 = 1515870810;
  const int32_t constant_neg_32_over_17 = -1010580540;
  const int32_t one_q2 = INT32_C(1) << 29;
  int32_t x = add_wrap(constant_48_over_17, mul(half_denominator, constant_neg_32_over_17));
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = mul(half_denominator, x);
    const int32_t one_minus_half_denominator_times_x = sub_wrap(one_q2, half_denominator_times_x);
    /* x * (...) is Q4.27; Rescale<2> is a saturating left shift by 2. */
    x = add_wrap(x, sat_shift_left(mul(x, one_minus_half_denominator_times_x), 2));
  }
  /* ExactMulByPot<-1> makes it Q1.30; Rescale<0> is a saturating left shift by 1. */
  return sat_shift_left(x, 1);
}

static int count_leading_zeros(uint32_t x) {
#if defined(__GNUC__)
  return x ? __builtin_clz(x) : 32;
#else
  int n = 0;
  if (x == 0) return 32;
  while (!(x & UINT32_C(0x80000000))) {
    x <<= 1;
    ++n;
  }
  return n;
#endif
}

/* MultiplyByQuantizedMultiplierGreaterThanOne (double rounding): x * 2^shift, then the Q31
 * multiply. diff_min keeps x * 2^shift inside int32. */
static int32_t scale_diff(int32_t diff, const mp_softmax_params_t *p) {
  return mul((int32_t)((uint32_t)diff << p->input_left_shift), p->input_mult);
}

mp_status_t mp_op_softmax(const mp_op_ctx_t *ctx) {
  const mp_softmax_params_t *p = (const mp_softmax_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0 || p->depth == 0 || p->input_left_shift < 0 ||
      p->input_left_shift > 31)
    return MP_ERR_OP;
  const uint32_t depth = p->depth;
  const uint32_t n = ctx->output->bytes;
  if (ctx->input[0]->bytes != n || n % depth != 0) return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  for (uint32_t row = 0; row < n / depth; ++row, in += depth, out += depth) {
    int32_t max_in_row = INT8_MIN;
    for (uint32_t c = 0; c < depth; ++c)
      if (in[c] > max_in_row) max_in_row = in[c];

    int32_t sum_of_exps = 0; /* Q12.19 */
    for (uint32_t c = 0; c < depth; ++c) {
      const int32_t diff = in[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t e = exp_on_negative_values_q5(scale_diff(diff, p));
        /* Rescale<12> from Q0.31: a rounding right shift by 12. */
        sum_of_exps = add_wrap(sum_of_exps, mp_rounding_divide_by_pot(e, ACCUMULATION_INTEGER_BITS));
      }
    }

    /* GetReciprocal(sum_of_exps, 12): normalise the sum into [1, 2) and take 1/x. */
    const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    const int num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one;
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
    const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
    const int exponent = num_bits_over_unit + 31 - 8; /* 8 output bits */
    if (exponent < 0 || exponent > 31) return MP_ERR_OP; /* TFLM: TFLITE_CHECK */

    for (uint32_t c = 0; c < depth; ++c) {
      const int32_t diff = in[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t e = exp_on_negative_values_q5(scale_diff(diff, p));
        const int32_t unsat = mp_rounding_divide_by_pot(mul(shifted_scale, e), exponent);
        out[c] = (int8_t)mp_clamp(unsat + INT8_MIN, INT8_MIN, INT8_MAX);
      } else {
        out[c] = INT8_MIN;
      }
    }
  }
  return MP_OK;
}
