/* Fixed-point arithmetic with TensorFlow Lite Micro's int8 rounding rules.
 *
 * The rules follow tensorflow/lite/kernels/internal/common.h (the default build, without
 * TFLITE_SINGLE_ROUNDING) and gemmlowp's fixedpoint.h: a Q31 multiply that rounds to nearest
 * with ties away from zero and saturates the one overflowing case, then a rounding
 * right shift that rounds ties away from zero. Every kernel requantizes through
 * mp_requantize() so both kernel paths round identically. */
#ifndef MP_FIXEDPOINT_H
#define MP_FIXEDPOINT_H

#include <stdint.h>

static inline int32_t mp_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = (int64_t)a * (int64_t)b;
  const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  /* Division, not a shift: C division truncates toward zero, as gemmlowp relies on. */
  return (int32_t)((ab + nudge) / (INT64_C(1) << 31));
}

static inline int32_t mp_rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)((INT64_C(1) << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift, multiplier in Q31 (TFLM MultiplyByQuantizedMultiplier). */
static inline int32_t mp_requantize(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  const int32_t shifted = (int32_t)((uint32_t)x << left);
  return mp_rounding_divide_by_pot(mp_sat_rounding_doubling_high_mul(shifted, multiplier), right);
}

/* std::round on a float (TfLiteRound, as TFLM's reference AffineQuantize uses it): nearest
 * integer, halves away from zero; saturated to +-2^30 so the conversion is defined (callers
 * clamp to int8 anyway); NaN gives 0. */
static inline int32_t mp_round_half_away(float q) {
  if (!(q == q)) return 0; /* NaN */
  if (q >= 1073741824.0f) return INT32_C(1) << 30;
  if (q <= -1073741824.0f) return -(INT32_C(1) << 30);
  const int32_t t = (int32_t)q;  /* truncates toward zero, exact */
  const float frac = q - (float)t; /* exact: q and t share their leading bits */
  if (frac >= 0.5f) return t + 1;
  if (frac <= -0.5f) return t - 1;
  return t;
}

static inline int32_t mp_clamp(int32_t x, int32_t lo, int32_t hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

/* The end of every weighted layer: requantize the int32 accumulator, add the output zero
 * point, clamp to the fused activation's range (TFLM reference_integer_ops). */
static inline int8_t mp_requantize_output(int32_t acc, int32_t multiplier, int32_t shift,
                                          int32_t output_offset, int32_t act_min,
                                          int32_t act_max) {
  return (int8_t)mp_clamp(mp_requantize(acc, multiplier, shift) + output_offset, act_min,
                          act_max);
}

/* The kernel taps k in [lo, hi) whose input position origin + k * dilation lies in
 * [0, size): convolution windows skip the rest, whose padded input contributes nothing. */
static inline void mp_tap_range(int32_t origin, int32_t dilation, int32_t k, int32_t size,
                                int32_t *lo, int32_t *hi) {
  int32_t l = 0, h = k;
  if (origin < 0) l = (-origin + dilation - 1) / dilation;
  const int32_t room = size - origin; /* positions left from origin */
  if (room <= 0) {
    h = 0;
  } else {
    const int32_t fit = (room + dilation - 1) / dilation;
    if (fit < h) h = fit;
  }
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

#endif /* MP_FIXEDPOINT_H */
