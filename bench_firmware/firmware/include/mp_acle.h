/* The DSP-extension SIMD intrinsics the optimized kernels use, as mp_-prefixed inline
 * functions.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4, Cortex-M7) each maps to
 * its ACLE intrinsic from arm_acle.h, i.e. one instruction. Everywhere else (the host build
 * for tests) each is portable C99 with the exact semantics of the Arm ACLE specification
 * (section "SIMD32 intrinsics" and "DSP intrinsics") and of the instruction in the Armv7-M
 * Architecture Reference Manual (A7.7), so the DSP kernel path runs, bit for bit, on the host.
 *
 * Lanes: a uint32_t holds four int8 lanes (byte 0 = bits 0..7) or two int16 lanes
 * (lo = bits 0..15, hi = bits 16..31). */
#ifndef MP_ACLE_H
#define MP_ACLE_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* An unaligned word load (one LDR on Cortex-M4/M7, which allow unaligned LDR). Never
 * dereference a misaligned uint32_t pointer: that is undefined behaviour in C. */
static inline uint32_t mp_load32(const void *p) {
  uint32_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

/* Rotate right; n in 1..31. GCC turns this pattern into ROR (arm_acle.h of GCC 12 lacks
 * __ror). */
static inline uint32_t mp_ror(uint32_t x, uint32_t n) { return (x >> n) | (x << (32u - n)); }

#if defined(__ARM_FEATURE_DSP)

/* Halfwords {sext(byte 0), sext(byte 2)}: SXTB16. */
static inline uint32_t mp_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }
/* a + {sext(byte 0), sext(byte 2)} per halfword, modulo 2^16: SXTAB16. */
static inline uint32_t mp_sxtab16(uint32_t a, uint32_t x) {
  return (uint32_t)__sxtab16((int32_t)a, (int32_t)x);
}
/* acc + lo(a) * lo(b) + hi(a) * hi(b), modulo 2^32: SMLAD. */
static inline int32_t mp_smlad(uint32_t a, uint32_t b, int32_t acc) {
  return __smlad((int32_t)a, (int32_t)b, acc);
}
/* acc + lo(a) * lo(b): SMLABB.  acc + hi(a) * hi(b): SMLATT. */
static inline int32_t mp_smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return __smlabb((int32_t)a, (int32_t)b, acc);
}
static inline int32_t mp_smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return __smlatt((int32_t)a, (int32_t)b, acc);
}
/* acc + lo(a) * hi(b): SMLABT.  acc + hi(a) * lo(b): SMLATB. */
static inline int32_t mp_smlabt(uint32_t a, uint32_t b, int32_t acc) {
  return __smlabt((int32_t)a, (int32_t)b, acc);
}
static inline int32_t mp_smlatb(uint32_t a, uint32_t b, int32_t acc) {
  return __smlatb((int32_t)a, (int32_t)b, acc);
}
/* Per-halfword a + b, modulo 2^16: SADD16.  Saturating to int16: QADD16. */
static inline uint32_t mp_sadd16(uint32_t a, uint32_t b) {
  return (uint32_t)__sadd16((int32_t)a, (int32_t)b);
}
static inline uint32_t mp_qadd16(uint32_t a, uint32_t b) {
  return (uint32_t)__qadd16((int32_t)a, (int32_t)b);
}
/* Per-byte a - b, modulo 2^8: SSUB8. */
static inline uint32_t mp_ssub8(uint32_t a, uint32_t b) {
  return (uint32_t)__ssub8((int8x4_t)a, (int8x4_t)b);
}

#else /* portable C with the same results */

static inline uint32_t mp_halves(int32_t lo, int32_t hi) {
  return ((uint32_t)lo & 0xFFFFu) | (((uint32_t)hi & 0xFFFFu) << 16);
}
static inline int32_t mp_lo16(uint32_t x) { return (int32_t)(int16_t)(x & 0xFFFFu); }
static inline int32_t mp_hi16(uint32_t x) { return (int32_t)(int16_t)(x >> 16); }
static inline int32_t mp_byte(uint32_t x, unsigned k) { return (int32_t)(int8_t)(x >> (8 * k)); }
/* Wrap-around addition without signed overflow (undefined in C). */
static inline int32_t mp_wrap_add(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline uint32_t mp_sxtb16(uint32_t x) { return mp_halves(mp_byte(x, 0), mp_byte(x, 2)); }
static inline uint32_t mp_sxtab16(uint32_t a, uint32_t x) {
  return mp_halves(mp_lo16(a) + mp_byte(x, 0), mp_hi16(a) + mp_byte(x, 2));
}
static inline int32_t mp_smlad(uint32_t a, uint32_t b, int32_t acc) {
  /* Each product fits int32 (|p| <= 2^30); the sums wrap modulo 2^32 as the instruction's
   * do (it only sets the Q flag on overflow). */
  const int32_t p0 = mp_lo16(a) * mp_lo16(b);
  const int32_t p1 = mp_hi16(a) * mp_hi16(b);
  return mp_wrap_add(mp_wrap_add(acc, p0), p1);
}
static inline int32_t mp_smlabb(uint32_t a, uint32_t b, int32_t acc) {
  return mp_wrap_add(acc, mp_lo16(a) * mp_lo16(b));
}
static inline int32_t mp_smlatt(uint32_t a, uint32_t b, int32_t acc) {
  return mp_wrap_add(acc, mp_hi16(a) * mp_hi16(b));
}
static inline int32_t mp_smlabt(uint32_t a, uint32_t b, int32_t acc) {
  return mp_wrap_add(acc, mp_lo16(a) * mp_hi16(b));
}
static inline int32_t mp_smlatb(uint32_t a, uint32_t b, int32_t acc) {
  return mp_wrap_add(acc, mp_hi16(a) * mp_lo16(b));
}
static inline uint32_t mp_sadd16(uint32_t a, uint32_t b) {
  return mp_halves(mp_lo16(a) + mp_lo16(b), mp_hi16(a) + mp_hi16(b));
}
static inline int32_t mp_sat16(int32_t x) {
  return x < -32768 ? -32768 : (x > 32767 ? 32767 : x);
}
static inline uint32_t mp_qadd16(uint32_t a, uint32_t b) {
  return mp_halves(mp_sat16(mp_lo16(a) + mp_lo16(b)), mp_sat16(mp_hi16(a) + mp_hi16(b)));
}
static inline uint32_t mp_ssub8(uint32_t a, uint32_t b) {
  uint32_t r = 0;
  for (unsigned k = 0; k < 4; ++k)
    r |= (((a >> (8 * k)) - (b >> (8 * k))) & 0xFFu) << (8 * k);
  return r;
}

#endif /* __ARM_FEATURE_DSP */

/* The odd bytes: {sext(byte 1), sext(byte 3)}, i.e. SXTB16 with ROR #8, and its
 * accumulating form. Together with mp_sxtb16 these split four int8 lanes into two pairs of
 * int16 lanes: (0, 2) and (1, 3), the order the weights are extended in too.
 * GCC does not fold a rotate into the __sxtb16 builtin (it emits a separate ROR), so on the
 * target the rotated forms are one instruction each in (non-volatile) inline assembly. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
static inline uint32_t mp_sxtb16_ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline uint32_t mp_sxtab16_ror8(uint32_t a, uint32_t x) {
  uint32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
#else
static inline uint32_t mp_sxtb16_ror8(uint32_t x) { return mp_sxtb16(mp_ror(x, 8)); }
static inline uint32_t mp_sxtab16_ror8(uint32_t a, uint32_t x) {
  return mp_sxtab16(a, mp_ror(x, 8));
}
#endif

/* Two int16 lanes {lo, hi}: PKHBT packs the bottom half of a with the bottom half of b
 * moved to the top; the compiler emits PKHBT / ORR for it. */
static inline uint32_t mp_pack16(int32_t lo, int32_t hi) {
  return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

#endif /* MP_ACLE_H */
