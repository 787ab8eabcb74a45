/* CONV_2D, int8 with per-channel quantization: TFLM reference_integer_ops::ConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/conv.h).
 *
 * Weights (bench_firmware/ops/conv.py conv_weight_stream): each output channel's OHWI filter
 * (kh * kw * in_c bytes) padded to a word, its row; 8-bit rows are stored in the order the
 * DSP kernel reads them: channels in pairs (2p, 2p + 1), each pair's two biases (int32)
 * first, then its rows' words interleaved (word g of row 2p, word g of row 2p + 1, word
 * g + 1 of row 2p, ...); an odd last row after the pairs as it is (conv_w8 below). The plan
 * keeps the biases in their own array as well, for the reference loops. With weight_bits 4, rows are packed two weights
 * per byte (mp_kernels.h), [out_c][packed row], which the reference loops read nibble by
 * nibble and the DSP path unpacks into its SRAM copy, in the 8-bit order, once per layer.
 * Taps outside the input are skipped, as in TFLM: the padded input would be -input_offset,
 * whose offset-corrected value is 0.
 *
 * The DSP path is described above conv_dsp() below. Both paths give identical bytes. */
#include <stdint.h>
#include <string.h>

#include "mp_acle.h"
#include "mp_fixedpoint.h"
#include "mp_conv_job.h"
#include "mp_kernels.h"
#include "mp_requant.h"


static inline int8_t conv_out(const mp_conv_params_t *p, int32_t acc, int32_t mult, int32_t shift) {
  return mp_requantize_output(acc, mult, shift, p->output_offset, p->act_min, p->act_max);
}

/* Weight k of output channel oc in the 8-bit order (file comment). */
static inline int32_t conv_w8(const int8_t *w, int32_t oc, int32_t k, int32_t row_bytes,
                              int32_t out_c) {
  const int32_t pair_bytes = 8 + 2 * row_bytes;
  if (oc < (out_c & ~1))
    return w[(oc >> 1) * pair_bytes + 8 + (k >> 2) * 8 + (oc & 1) * 4 + (k & 3)];
  return w[(out_c >> 1) * pair_bytes + k];
}

static void conv_ref(const mp_conv_job_t *j) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t kh = p->kernel_h, kw = p->kernel_w;
  const int bits4 = p->weight_bits == 4u;
  const int32_t row_stride = (int32_t)(bits4 ? mp_int4_row_bytes(p->row_bytes) : p->row_bytes);
  for (int32_t b = 0; b < d->batches; ++b) {
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      for (int32_t ox = 0; ox < d->out_w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int8_t *out = j->output + ((b * d->out_h + oy) * d->out_w + ox) * d->out_c;
        for (int32_t oc = 0; oc < d->out_c; ++oc) {
          const int8_t *row = j->weights + oc * row_stride; /* 4-bit rows */
          int32_t acc = 0;
          for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation_h;
            for (int32_t kx = 0; kx < kw; ++kx) {
              const int32_t ix = ix0 + kx * p->dilation_w;
              if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
              const int8_t *x = j->input + ((b * d->in_h + iy) * d->in_w + ix) * d->in_c;
              const int32_t k0 = (ky * kw + kx) * d->in_c;
              for (int32_t ic = 0; ic < d->in_c; ++ic) {
                const int32_t w = bits4 ? mp_int4_at(row, k0 + ic)
                                        : conv_w8(j->weights, oc, k0 + ic, row_stride, d->out_c);
                acc += w * ((int32_t)x[ic] + p->input_offset);
              }
            }
          }
          acc += j->bias[oc];
          out[oc] = conv_out(p, acc, j->mult[oc], j->shift[oc]);
        }
      }
    }
  }
}

/* ---- DSP path: a blocked matrix product over a widened im2col buffer ---------------------
 *
 * The product is out[pixel][oc] = bias[oc] + sum_k col[pixel][k] * w[oc][k], with col the
 * pixel's window (kernel-row spans of the NHWC input, in OHWI order like the weights) plus
 * input_offset. Two output pixels' columns are widened to int16 once per pixel pair, with the
 * offset added (SXTAB16), into one interleaved buffer: for each group of four k, pixel 0's
 * {k0, k2}, {k1, k3} halfword pairs, then pixel 1's (16 bytes). The weights are extended with
 * SXTB16 / SXTB16 ROR #8, which yields the same {k0, k2}, {k1, k3} pairing, so SMLAD sums
 * matching products without reordering anything. Each group of the inner loop is one LDM of
 * the four column words and one LDM of the pair's two weight words (adjacent in the 8-bit
 * order), four SXTB16 and 8 SMLADs (16 MACs) into four accumulators, 2 channels x 2 pixels;
 * the loop is unrolled four times. The accumulators leave as one STM per channel pair, in the
 * order mp_requant_pairs() reads: {p0 c0, p0 c1, p1 c0, p1 c1}.
 *
 * Where the weights were copied to SRAM and the requantization takes the short path
 * (mp_requant.h), the copy holds them widened once per layer (conv_widen_stream) and a second
 * loop runs four output pixels at a time (conv_quads_t): their columns interleaved per group
 * of four k ({k0, k2} words of pixels 0-3, then their {k1, k3} words), two channels by four
 * pixels in eight accumulators, no SXTB16 in the loop; each pair's eight sums are requantized
 * in registers and stored as bytes, so the pair's bookkeeping and table loads are shared by
 * eight outputs. The pair's biases, ahead of its weights in the same stream, start the
 * accumulators.
 *
 * Taps outside the input are gathered as the input zero point (-input_offset), which widens
 * to 0, so they add nothing, as TFLM's skipped taps. A 1x1 kernel over a multiple of four
 * channels needs no gathering: the pixel's channels are its column. Rows of weights are
 * padded with zeros to row_bytes, so the padded column bytes add nothing either.
 *
 * Scratch (arena, planned by bench_firmware/planner.py): the int16 buffer, 4 * row_bytes;
 * the pixel pair's int32 accumulators, 8 * out_c; the requantization table (mp_requant.h),
 * 12 * out_c; one pixel's int8 column, row_bytes, and 4 bytes of slack after it (neither used
 * by the 1x1 path); and, when the compiler gave the room (bench_firmware/ops/conv.py
 * conv_extra_scratch), a copy of the weight stream, widened (conv_widen_stream), made once per
 * layer so the pixel blocks read them from SRAM, not flash, and after it the four-pixel
 * column, 8 * row_bytes, and 8 bytes the Cortex-M7 loop may read past it.
 * An odd last pixel is computed as a pair with itself (the four-pixel loop repeats the last
 * pixel), an odd last channel with its own row twice; the duplicate results are not kept.
 * The accumulators are requantized by mp_requant_pairs(), equal to mp_requantize_output() bit
 * for bit. */

/* Whether the columns are the input pixels themselves (must agree with
 * bench_firmware/ops/conv.py conv_direct()). */
static int conv_direct(const mp_conv_job_t *j) {
  const mp_conv_params_t *p = j->p;
  return p->kernel_h == 1 && p->kernel_w == 1 && (j->d.in_c & 3) == 0 && p->pad_top == 0 &&
         p->pad_left == 0;
}

/* Copies n bytes of a window row: first layers copy a few bytes per kernel row (kw * in_c
 * with in_c <= 3), less than a memcpy call costs, and the runtime's own loop sits at the same
 * address in an exported library as in the bench firmware (mp_conv_job.h). */
static inline void conv_copy(int8_t *dst, const int8_t *src, int32_t n) {
  mp_copy_bytes(dst, src, n);
}

static inline MP_NO_LIBCALLS void conv_fill(int8_t *dst, int8_t v, int32_t n) {
  for (int32_t i = 0; i < n; ++i) dst[i] = v;
}

/* Pixel (oy, ox)'s int8 column: its window, kernel row by kernel row, taps outside the input
 * filled with `pad`, then `pad` up to row_bytes. */
static MP_NO_LIBCALLS void conv_gather(const mp_conv_job_t *j, const int8_t *in_b, int32_t oy, int32_t ox,
                        int8_t *dst) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t in_c = d->in_c, kw = p->kernel_w;
  const int8_t pad = (int8_t)(-p->input_offset);
  const int32_t iy0 = oy * p->stride_h - p->pad_top;
  const int32_t ix0 = ox * p->stride_w - p->pad_left;
  const int32_t row_span = kw * in_c;
  int8_t *end = dst + p->row_bytes;
  if (p->dilation_w == 1 && iy0 >= 0 && ix0 >= 0 && ix0 + kw <= d->in_w &&
      iy0 + (p->kernel_h - 1) * p->dilation_h < d->in_h) {
    /* The whole window is inside the input (most pixels): its rows as they are, no tests (a
     * first layer's rows of at most three words are copied as words by conv_pixel_src). */
    const int8_t *src = in_b + (iy0 * d->in_w + ix0) * in_c;
    const int32_t src_step = p->dilation_h * d->in_w * in_c;
    for (int32_t ky = 0; ky < p->kernel_h; ++ky, dst += row_span, src += src_step)
      conv_copy(dst, src, row_span);
    conv_fill(dst, pad, (int32_t)(end - dst));
    return;
  }
  int32_t kx_lo, kx_hi;
  mp_tap_range(ix0, p->dilation_w, kw, d->in_w, &kx_lo, &kx_hi);
  for (int32_t ky = 0; ky < p->kernel_h; ++ky, dst += row_span) {
    const int32_t iy = iy0 + ky * p->dilation_h;
    if (iy < 0 || iy >= d->in_h || kx_hi <= kx_lo) {
      conv_fill(dst, pad, row_span);
      continue;
    }
    const int8_t *row = in_b + iy * d->in_w * in_c;
    conv_fill(dst, pad, kx_lo * in_c);
    if (p->dilation_w == 1) {
      conv_copy(dst + kx_lo * in_c, row + (ix0 + kx_lo) * in_c, (kx_hi - kx_lo) * in_c);
    } else {
      for (int32_t kx = kx_lo; kx < kx_hi; ++kx)
        conv_copy(dst + kx * in_c, row + (ix0 + kx * p->dilation_w) * in_c, in_c);
    }
    conv_fill(dst + kx_hi * in_c, pad, (kw - kx_hi) * in_c);
  }
  conv_fill(dst, pad, (int32_t)(end - dst));
}

/* Widens groups one at a time, the {k0, k2} word at col[0] and the {k1, k3} word at col[odd],
 * `step` words a group, until the count left is a multiple of four; returns the passes of
 * four left. */
static inline int32_t conv_widen_head(const int8_t **src, uint32_t **col, int32_t groups,
                                      uint32_t off2, int32_t odd, int32_t step) {
  for (; groups & 3; --groups, *src += 4, *col += step) {
    const uint32_t v = mp_load32(*src);
    (*col)[0] = mp_sxtab16(off2, v);
    (*col)[odd] = mp_sxtab16_ror8(off2, v);
  }
  return groups >> 2;
}

/* conv_widen: widens `groups` words of int8 at src (word-aligned: an input pixel of a multiple
 * of four channels, or the gathered column), plus the offset, into slot 0 or 1 (col already
 * points at the slot) of the pixel-pair column; conv_widen4 into slot 0-3 of the four-pixel
 * one. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* Four groups per pass: one LDM (1 + N cycles, DDI 0439B Table 3-1; the source is
 * word-aligned), eight SXTAB16, then the stores; the groups short of a multiple of four first,
 * one at a time. */
#define CONV_WIDEN_QUAD_ASM                     \
  "ldmia  %[s]!, {r4, r6, r8, r10}\n\t"         \
  "sxtab16 r5, %[off], r4, ror #8\n\t"          \
  "sxtab16 r4, %[off], r4\n\t"                  \
  "sxtab16 r7, %[off], r6, ror #8\n\t"          \
  "sxtab16 r6, %[off], r6\n\t"                  \
  "sxtab16 r9, %[off], r8, ror #8\n\t"          \
  "sxtab16 r8, %[off], r8\n\t"                  \
  "sxtab16 r11, %[off], r10, ror #8\n\t"        \
  "sxtab16 r10, %[off], r10\n\t"
static void conv_widen(const int8_t *src, uint32_t *col, int32_t groups, uint32_t off2) {
  int32_t quads = conv_widen_head(&src, &col, groups, off2, 1, 4);
  if (quads == 0) return;
  __asm__ volatile(
      "1:\n\t"
      CONV_WIDEN_QUAD_ASM
      "strd   r4, r5, [%[c]], #16\n\t"
      "strd   r6, r7, [%[c]], #16\n\t"
      "strd   r8, r9, [%[c]], #16\n\t"
      "strd   r10, r11, [%[c]], #16\n\t"
      "subs   %[n], %[n], #1\n\t"
      "bne    1b\n\t"
      : [s] "+r"(src), [c] "+r"(col), [n] "+r"(quads)
      : [off] "r"(off2)
      : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "cc", "memory");
}
/* The same into slot 0-3 of the four-pixel column (conv_quads_t): a group's {k0, k2} word at
 * col[0], its {k1, k3} word at col[4], eight words a group. */
static void conv_widen4(const int8_t *src, uint32_t *col, int32_t groups, uint32_t off2) {
  int32_t quads = conv_widen_head(&src, &col, groups, off2, 4, 8);
  if (quads == 0) return;
  __asm__ volatile(
      "1:\n\t"
      CONV_WIDEN_QUAD_ASM
      "str    r4, [%[c]]\n\t"
      "str    r5, [%[c], #16]\n\t"
      "str    r6, [%[c], #32]\n\t"
      "str    r7, [%[c], #48]\n\t"
      "str    r8, [%[c], #64]\n\t"
      "str    r9, [%[c], #80]\n\t"
      "str    r10, [%[c], #96]\n\t"
      "str    r11, [%[c], #112]\n\t"
      "add    %[c], %[c], #128\n\t"
      "subs   %[n], %[n], #1\n\t"
      "bne    1b\n\t"
      : [s] "+r"(src), [c] "+r"(col), [n] "+r"(quads)
      : [off] "r"(off2)
      : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "cc", "memory");
}
/* Four consecutive input pixels (src, src + step, src + 2 * step, src + 3 * step: a 1x1
 * layer's pixels at stride 1) into the four slots of the four-pixel column at once: per group
 * four LDRs (any alignment), eight SXTAB16 and one STM of the group's eight words. */
static __attribute__((noinline)) void conv_widen4x(const int8_t *src, int32_t step,
                                                   uint32_t *col, int32_t groups,
                                                   uint32_t off2) {
  register const int8_t *s3 __asm__("r12") = src + 3 * step;
  __asm__ volatile(
      "1:\n\t"
      "ldr    r8, [%[s]]\n\t"
      "ldr    r9, [%[s], %[st]]\n\t"
      "ldr    r10, [%[s], %[st], lsl #1]\n\t"
      "ldr    r11, [%[s3]], #4\n\t"
      "add    %[s], %[s], #4\n\t"
      "sxtab16 r4, %[off], r8\n\t"
      "sxtab16 r8, %[off], r8, ror #8\n\t"
      "sxtab16 r5, %[off], r9\n\t"
      "sxtab16 r9, %[off], r9, ror #8\n\t"
      "sxtab16 r6, %[off], r10\n\t"
      "sxtab16 r10, %[off], r10, ror #8\n\t"
      "sxtab16 r7, %[off], r11\n\t"
      "sxtab16 r11, %[off], r11, ror #8\n\t"
      "stmia  %[c]!, {r4-r11}\n\t"
      "subs   %[n], %[n], #1\n\t"
      "bne    1b\n\t"
      : [s] "+r"(src), [s3] "+r"(s3), [c] "+r"(col), [n] "+r"(groups)
      : [st] "r"(step), [off] "r"(off2)
      : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "cc", "memory");
}
#else
/* Every group one at a time. */
static void conv_widen(const int8_t *src, uint32_t *col, int32_t groups, uint32_t off2) {
  for (; groups > 0; --groups) conv_widen_head(&src, &col, 1, off2, 1, 4);
}
static void conv_widen4(const int8_t *src, uint32_t *col, int32_t groups, uint32_t off2) {
  for (; groups > 0; --groups) conv_widen_head(&src, &col, 1, off2, 4, 8);
}
static void conv_widen4x(const int8_t *src, int32_t step, uint32_t *col, int32_t groups,
                         uint32_t off2) {
  for (int32_t s = 0; s < 4; ++s) conv_widen4(src + s * step, col + s, groups, off2);
}
#endif

/* Pixel (oy, ox)'s column widened straight from the input when its window lies inside the
 * input (the caller checked that kernel rows are whole words filling the row), into the
 * pixel-pair column or, with `quad`, a slot of the four-pixel one; 0 when it does not, and the
 * caller gathers. Out of line, so the pixel loop keeps its registers. */
static __attribute__((noinline)) int conv_widen_window(const mp_conv_job_t *j,
                                                       const int8_t *in_b, int32_t oy,
                                                       int32_t ox, uint32_t *dst,
                                                       uint32_t off2, int quad) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t iy0 = oy * p->stride_h - p->pad_top;
  const int32_t ix0 = ox * p->stride_w - p->pad_left;
  if (iy0 < 0 || ix0 < 0 || ix0 + p->kernel_w > d->in_w ||
      iy0 + (p->kernel_h - 1) * p->dilation_h >= d->in_h)
    return 0;
  const int32_t in_c = d->in_c, span_groups = p->kernel_w * in_c / 4;
  const int32_t row_step = p->dilation_h * d->in_w * in_c;
  const int8_t *row = in_b + (iy0 * d->in_w + ix0) * in_c;
  for (int32_t ky = 0; ky < p->kernel_h; ++ky, row += row_step) {
    if (quad) {
      conv_widen4(row, dst, span_groups, off2);
      dst += 8 * span_groups;
    } else {
      conv_widen(row, dst, span_groups, off2);
      dst += 4 * span_groups;
    }
  }
  return 1;
}

/* One group of four k for 2 channels x 2 pixels. */
#define CONV_MAC_GROUP(col, w0, w1, a00, a01, a10, a11)      \
  do {                                                         \
    const uint32_t v0_ = mp_load32(w0), v1_ = mp_load32(w1); \
    const uint32_t v0e_ = mp_sxtb16(v0_), v0o_ = mp_sxtb16_ror8(v0_); \
    a00 = mp_smlad((col)[0], v0e_, a00);                       \
    a00 = mp_smlad((col)[1], v0o_, a00);                       \
    a10 = mp_smlad((col)[2], v0e_, a10);                       \
    a10 = mp_smlad((col)[3], v0o_, a10);                       \
    const uint32_t v1e_ = mp_sxtb16(v1_), v1o_ = mp_sxtb16_ror8(v1_); \
    a01 = mp_smlad((col)[0], v1e_, a01);                       \
    a01 = mp_smlad((col)[1], v1o_, a01);                       \
    a11 = mp_smlad((col)[2], v1e_, a11);                       \
    a11 = mp_smlad((col)[3], v1o_, a11);                       \
  } while (0)

/* Every pair of output channels for one pixel pair: the inner product of the pixel pair's
 * column with the pair's interleaved weights, started from the pair's biases, stored as four
 * words per pair at acc. */
typedef struct {
  const uint32_t *col;     /* +0 */
  const uint32_t *col_end; /* +4 */
  int32_t *acc;            /* +8, four words per pair from here */
  const int8_t *w_end;     /* +12, the end of the pairs' stream */
  const int8_t *w;         /* +16, the stream: biases, then weights, per pair */
  int32_t skip;            /* +20, groups the first pass leaves out: (4 - groups % 4) % 4 */
} conv_pairs_t;

/* Every pair of output channels for four output pixels over the widened stream, requantized
 * and stored (conv_dsp with a widened copy, whose requantization takes the short path,
 * mp_requant.h). The column holds the four pixels' widened windows per group of four k: the
 * {k0, k2} words of pixels 0-3, then their {k1, k3} words (conv_widen4); the stream, per
 * pair, its two biases, then per group the words {2p k0 k2}, {2p+1 k0 k2}, {2p k1 k3},
 * {2p+1 k1 k3}, then the two channels' table words (conv_widen_stream), so the pair's end
 * finds them where its weights end. The fields are in the order the kernel keeps them in its
 * stack frame. */
typedef struct {
  const int8_t *w_end;     /* +0, the end of the pairs' stream */
  const uint32_t *col;     /* +4 */
  const uint32_t *col_end; /* +8 */
  int32_t skip;            /* +12, groups the first pass leaves out: (4 - groups % 4) % 4 */
  int32_t off;             /* +16, the pair's first channel: 0 */
  int8_t *out[4];          /* +20, each pixel's outputs (a repeated pixel: the same bytes) */
  const int8_t *w;         /* +36, the stream */
} conv_quads_t;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* Hand-scheduled: the inner loop needs all fourteen registers (4 accumulators, 4 column
 * words, 2 weight words, 4 pointers... less one: the pair's weights are one stream), which
 * GCC cannot allocate around C code, so the whole channel loop is one naked function keeping
 * the rest of its state (column start, accumulator pointer, stream end, loop entry) in its
 * stack frame, each one load away. The loop holds four groups; every group is fourteen 32-bit
 * instructions (56 bytes: no 16-bit encoding exists for LDM of r8-r12, SXTB16 or SMLAD), so a
 * pair's first pass enters `skip` groups in and the count needs no remainder loop (the
 * pointers advance by post-increment, so they do not care where the pass began). */
#define CONV_GROUP_BYTES 56
#define CONV_STR_(x) #x
#define CONV_STR(x) CONV_STR_(x)
#define CONV_GROUP_ASM                     \
  "ldmia.w r0!, {r8, r9, r10, r11}\n\t"   \
  "ldmia.w r2!, {r3, r12}\n\t"            \
  "sxtb16 lr, r3\n\t"                      \
  "sxtb16 r3, r3, ror #8\n\t"              \
  "smlad  r4, r8, lr, r4\n\t"              \
  "smlad  r6, r10, lr, r6\n\t"             \
  "smlad  r4, r9, r3, r4\n\t"              \
  "smlad  r6, r11, r3, r6\n\t"             \
  "sxtb16 lr, r12\n\t"                     \
  "sxtb16 r12, r12, ror #8\n\t"            \
  "smlad  r5, r8, lr, r5\n\t"              \
  "smlad  r7, r10, lr, r7\n\t"             \
  "smlad  r5, r9, r12, r5\n\t"             \
  "smlad  r7, r11, r12, r7\n\t"
__attribute__((naked, noinline)) static void conv_mm_pairs_asm(conv_pairs_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "ldr    r1, [r0, #20]\n\t" /* skip */
      "adr.w  r3, 1f\n\t"
      "mov    r2, #" CONV_STR(CONV_GROUP_BYTES) "\n\t"
      "mla    r3, r1, r2, r3\n\t"
      "orr    r3, r3, #1\n\t"   /* a Thumb address for BX */
      "ldr    r1, [r0, #4]\n\t"  /* col_end */
      "ldr    r2, [r0, #16]\n\t" /* w */
      "ldr    r12, [r0, #8]\n\t" /* acc */
      "ldr    lr, [r0]\n\t"      /* col */
      "push   {r3}\n\t"
      "ldr    r3, [r0, #12]\n\t" /* w_end */
      "push   {r3, r12, lr}\n\t" /* [sp] w_end, [sp+4] acc, [sp+8] col, [sp+12] entry */
      /* a pair's start: its biases (ahead of its weights in the stream) into the four
       * accumulators, the column from the frame, the jump into the loop at the entry */
      "2:\n\t"
      "ldmia  r2!, {r4, r5}\n\t"
      "ldr    r0, [sp, #8]\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r5\n\t"
      "ldr    r3, [sp, #12]\n\t"
      "bx     r3\n\t"
      ".p2align 3\n\t" /* the loop head on a flash read unit */
      "1:\n\t"
      CONV_GROUP_ASM
      CONV_GROUP_ASM
      CONV_GROUP_ASM
      CONV_GROUP_ASM
      "cmp    r0, r1\n\t"
      "bne    1b\n\t"
      /* a pair's end: its four sums to the accumulator rows, then the next pair */
      "ldr    lr, [sp, #4]\n\t"
      "ldr    r12, [sp]\n\t"
      "stmia  lr!, {r4, r5, r6, r7}\n\t"
      "str    lr, [sp, #4]\n\t"
      "cmp    r2, r12\n\t"
      "bne    2b\n\t"
      "add    sp, sp, #16\n\t"
      "pop    {r4-r11, pc}\n\t");
}
static void conv_mm_pairs(conv_pairs_t *s, int32_t groups) {
  s->skip = (4 - (groups & 3)) & 3;
  conv_mm_pairs_asm(s);
}
/* Both forms: the struct's fields into r1, r3-r10 (w_end, col, col_end, skip, off, out[])
 * and w into r2; the loop entry `skip` (r5) groups in, as a Thumb address for BX, into r5. */
#define CONV_QLOAD_ASM                      \
  "push   {r4-r11, lr}\n\t"                \
  "ldr    r2, [r0, #36]\n\t"               \
  "ldmia  r0, {r1, r3, r4, r5, r6, r7, r8, r9, r10}\n\t"
#define CONV_QENTRY_ASM                     \
  "adr.w  r12, 1f\n\t"                     \
  "mov    lr, #" CONV_STR(CONV_QGROUP_BYTES) "\n\t" \
  "mla    r5, r5, lr, r12\n\t"             \
  "orr    r5, r5, #1\n\t"

#if defined(MP_CORTEX_M7)
/* The Cortex-M7 form: the loads single LDRs at fixed offsets that issue beside the SMLADs
 * (one load and one MAC a cycle; a load's result usable two cycles later), each half group
 * loading the next half's first column words and weight word ahead: 16 cycles a group of 32
 * MACs in the model's dual-issue scheduler (timing/m7.py), against 26 for the LDM form, whose
 * LDMs issue alone. Entering `skip` groups in, the pointers start that many groups back so the
 * fixed offsets land on the first group; the loop's last half reads up to 8 bytes past the
 * column, inside the scratch (bench_firmware/ops/conv.py conv_extra_scratch). */
#define CONV_QGROUP_BYTES 104
/* One half group, at column offset C and weight offset W: entering with r12, lr = pixels 0
 * and 1's column words and r1 = channel 2p's weight word (loaded by the half before); C8, C12,
 * W4 the offsets of its other words, NC, NC4, NW those the next half enters with. */
#define CONV_QHALF_M7_ASM(C8, C12, W4, NC, NC4, NW) \
  "smlad  r4, r12, r1, r4\n\t"              \
  "ldr.n  r3, [r2, #" W4 "]\n\t"            \
  "smlad  r6, lr, r1, r6\n\t"               \
  "smlad  r5, r12, r3, r5\n\t"              \
  "ldr.w  r12, [r0, #" C8 "]\n\t"           \
  "smlad  r7, lr, r3, r7\n\t"               \
  "ldr.w  lr, [r0, #" C12 "]\n\t"           \
  "smlad  r8, r12, r1, r8\n\t"              \
  "smlad  r9, r12, r3, r9\n\t"              \
  "ldr.w  r12, [r0, #" NC "]\n\t"           \
  "smlad  r10, lr, r1, r10\n\t"             \
  "ldr.n  r1, [r2, #" NW "]\n\t"            \
  "smlad  r11, lr, r3, r11\n\t"             \
  "ldr.w  lr, [r0, #" NC4 "]\n\t"
/* Group g of the four: its {k0, k2} half at column 32g, weights 16g; its {k1, k3} half 16
 * bytes and 8 bytes on. */
#define CONV_QGROUP_M7_ASM(C8, C12, W4, C16, C20, W8, C24, C28, W12, C32, C36, W16) \
  CONV_QHALF_M7_ASM(C8, C12, W4, C16, C20, W8)                                      \
  CONV_QHALF_M7_ASM(C24, C28, W12, C32, C36, W16)
/* A channel's four sums (A0-A3) requantized in two interleaved chains: MP_RQ_REGS_ASM's
 * arithmetic, each result written over its sum once the ADD has read the sum's sign, so r12
 * and lr, the chains' scratch, are free three steps early; the table words in r0, r1, r3,
 * entering with r12 and lr = 2 * A0, 2 * A1.
 * Beside the last steps: L0 and L1 may load r0 and r3, N0 and N1 write r12 and lr (the next
 * channel's first shifts), L2 may load r1. */
#define CONV_QRQ4_M7_ASM(A0, A1, A2, A3, L0, L1, N0, N1, L2) \
  "smmlar r12, r12, r0, r3\n\t"             \
  "smmlar lr, lr, r0, r3\n\t"               \
  "add    " A0 ", r12, " A0 ", asr #31\n\t" \
  "lsl    r12, " A2 ", #1\n\t"              \
  "add    " A1 ", lr, " A1 ", asr #31\n\t"  \
  "lsl    lr, " A3 ", #1\n\t"               \
  "smmlar r12, r12, r0, r3\n\t"             \
  "asr    " A0 ", " A0 ", r1\n\t"           \
  "smmlar lr, lr, r0, r3\n\t"               \
  "asr    " A1 ", " A1 ", r1\n\t"           \
  L0                                        \
  "ssat   " A0 ", #8, " A0 "\n\t"           \
  L1                                        \
  "add    " A2 ", r12, " A2 ", asr #31\n\t" \
  "ssat   " A1 ", #8, " A1 "\n\t"           \
  "add    " A3 ", lr, " A3 ", asr #31\n\t"  \
  N0                                        \
  "asr    " A2 ", " A2 ", r1\n\t"           \
  N1                                        \
  "asr    " A3 ", " A3 ", r1\n\t"           \
  L2                                        \
  "ssat   " A2 ", #8, " A2 "\n\t"
__attribute__((naked, noinline)) static void conv_mm_quads_wide_asm(conv_quads_t *s) {
  (void)s;
  __asm__ volatile(
      CONV_QLOAD_ASM
      "lsl    r12, r5, #4\n\t"                /* the weights' step back: 16 * skip */
      "ldrd   r0, lr, [r3]\n\t"               /* the first half's column words, every pair's */
      "push   {r0, r12, lr}\n\t"
      "sub    r3, r3, r12, lsl #1\n\t"        /* the column's: 32 * skip */
      CONV_QENTRY_ASM
      /* [sp] w_end, +4 column less 32 * skip, +8 col_end, +12 entry, +16 off, +20..+32
       * out[], +36 and +44 the column's first two words, +40 16 * skip */
      "push   {r1, r3, r4, r5, r6, r7, r8, r9, r10}\n\t"
      /* A channel pair's start: its two biases (ahead of its weights in the stream) into the
       * eight accumulators, the first half's weight word into r1, the frame's words beside. */
      "2:\n\t"
      "ldmia  r2!, {r4, r5}\n\t"
      "ldr    r12, [sp, #40]\n\t"
      "ldr    r0, [sp, #4]\n\t"
      "ldr    r1, [r2]\n\t"
      "ldr    r3, [sp, #12]\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r5\n\t"
      "sub    r2, r2, r12\n\t"
      "mov    r8, r4\n\t"
      "mov    r9, r5\n\t"
      "ldr    r12, [sp, #36]\n\t"
      "mov    r10, r4\n\t"
      "ldr    lr, [sp, #44]\n\t"
      "mov    r11, r5\n\t"
      "bx     r3\n\t"
      ".p2align 3\n\t"
      "1:\n\t"
      CONV_QGROUP_M7_ASM("8", "12", "4", "16", "20", "8", "24", "28", "12", "32", "36",
                         "16")
      "3:\n\t"
      ".if (3b - 1b) - " CONV_STR(CONV_QGROUP_BYTES) "\n\t"
      ".error \"CONV_QGROUP_BYTES is not the size of a group\"\n\t"
      ".endif\n\t"
      CONV_QGROUP_M7_ASM("40", "44", "20", "48", "52", "24", "56", "60", "28", "64", "68",
                         "32")
      CONV_QGROUP_M7_ASM("72", "76", "36", "80", "84", "40", "88", "92", "44", "96",
                         "100", "48")
      CONV_QGROUP_M7_ASM("104", "108", "52", "112", "116", "56", "120", "124", "60",
                         "128", "132", "64")
      "add    r0, r0, #128\n\t"
      "add    r2, r2, #64\n\t"
      "ldr    r3, [sp, #8]\n\t"
      "cmp    r0, r3\n\t"
      "bne    1b\n\t"
      /* The pair's end: r2 is at its table words (channel 2p's three, then 2p+1's). Channel
       * 2p's sums (r4, r6, r8, r10), then 2p+1's (r5, r7, r9, r11), each channel's second
       * chain overlapping the next's first: 43 cycles from here to the next pair's loop in
       * the model's scheduler, against 60 with the table pointer in the frame and two
       * chains one after the other. Each pixel's two bytes are joined (BFI) and stored as
       * one halfword at out[pixel] + off (STRH takes any alignment, ARMv7-M ARM A3.2.1). */
      "ldr    r0, [r2]\n\t"
      "lsl    r12, r4, #1\n\t"
      "ldr    r3, [r2, #8]\n\t"
      "lsl    lr, r6, #1\n\t"
      "ldr    r1, [r2, #4]\n\t"
      CONV_QRQ4_M7_ASM("r4", "r6", "r8", "r10",
                       "ldr    r0, [r2, #12]\n\t", "ldr    r3, [r2, #20]\n\t",
                       "lsl    r12, r5, #1\n\t", "lsl    lr, r7, #1\n\t",
                       "ldr    r1, [r2, #16]\n\t")
      "ssat   r10, #8, r10\n\t"
      CONV_QRQ4_M7_ASM("r5", "r7", "r9", "r11",
                       "ldr    r3, [sp, #16]\n\t", "ldr    r0, [sp, #20]\n\t",
                       "ldr    r12, [sp, #28]\n\t", "ldr    lr, [sp, #32]\n\t",
                       "ldr    r1, [sp, #24]\n\t")
      "ssat   r11, #8, r11\n\t"
      "bfi    r4, r5, #8, #8\n\t"
      "bfi    r6, r7, #8, #8\n\t"
      "strh   r4, [r0, r3]\n\t"
      "bfi    r8, r9, #8, #8\n\t"
      "strh   r6, [r1, r3]\n\t"
      "bfi    r10, r11, #8, #8\n\t"
      "strh   r8, [r12, r3]\n\t"
      "add    r0, r3, #2\n\t"
      "strh   r10, [lr, r3]\n\t"
      "add    r2, r2, #24\n\t"
      "ldr    r12, [sp]\n\t"
      "str    r0, [sp, #16]\n\t"
      "cmp    r2, r12\n\t"
      "bne    2b\n\t"
      "add    sp, sp, #48\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#else
/* The widened loop (conv_quads_t): a group is 32 MACs, two channels by four pixels in eight
 * accumulators (r4-r11), each {k0, k2} then {k1, k3} half one LDM of the two channels'
 * weight words and two LDMs of two pixels' column words, eight SMLADs: 17 cycles a 16 MACs on
 * the Cortex-M4 (DDI 0439B Table 3-1: LDM 1 + N, SMLAD 1), no SXTB16, and a pair's
 * requantization and bookkeeping shared by eight outputs instead of four. The loop holds four
 * groups (84 bytes each: the weights' LDMs have 16-bit encodings) and is entered `skip` groups
 * in, as the 8-bit loop; the column's end waits in the frame. After the loop r2 is at the
 * pair's table words: each channel's come into r0, r1, r3 and its sums are requantized in
 * place (MP_RQ_REGS_ASM); each pixel's two bytes are joined (BFI) and stored as one halfword
 * at out[pixel] + off (STRH takes any alignment, ARMv7-M ARM A3.2.1), then the next pair,
 * its biases (ahead of its weights in the stream) in the eight accumulators. */
#define CONV_QGROUP_BYTES 84
#define CONV_QHALF_ASM                      \
  "ldmia  r2!, {r1, r3}\n\t"                \
  "ldmia.w r0!, {r12, lr}\n\t"              \
  "smlad  r4, r12, r1, r4\n\t"              \
  "smlad  r5, r12, r3, r5\n\t"              \
  "smlad  r6, lr, r1, r6\n\t"               \
  "smlad  r7, lr, r3, r7\n\t"               \
  "ldmia.w r0!, {r12, lr}\n\t"              \
  "smlad  r8, r12, r1, r8\n\t"              \
  "smlad  r9, r12, r3, r9\n\t"              \
  "smlad  r10, lr, r1, r10\n\t"             \
  "smlad  r11, lr, r3, r11\n\t"
__attribute__((naked, noinline)) static void conv_mm_quads_wide_asm(conv_quads_t *s) {
  (void)s;
  __asm__ volatile(
      CONV_QLOAD_ASM
      CONV_QENTRY_ASM
      /* [sp] w_end, +4 col, +8 col_end, +12 entry, +16 off, +20..+32 out[] */
      "push   {r1, r3, r4, r5, r6, r7, r8, r9, r10}\n\t"
      "2:\n\t"
      "ldmia  r2!, {r4, r5}\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r5\n\t"
      "mov    r8, r4\n\t"
      "mov    r9, r5\n\t"
      "mov    r10, r4\n\t"
      "mov    r11, r5\n\t"
      "ldr    r0, [sp, #4]\n\t"
      "ldr    r3, [sp, #12]\n\t"
      "bx     r3\n\t"
      ".p2align 3\n\t"
      "1:\n\t"
      CONV_QHALF_ASM CONV_QHALF_ASM
      "3:\n\t"
      ".if (3b - 1b) - " CONV_STR(CONV_QGROUP_BYTES) "\n\t"
      ".error \"CONV_QGROUP_BYTES is not the size of a group\"\n\t"
      ".endif\n\t"
      CONV_QHALF_ASM CONV_QHALF_ASM
      CONV_QHALF_ASM CONV_QHALF_ASM
      CONV_QHALF_ASM CONV_QHALF_ASM
      "ldr    r1, [sp, #8]\n\t"
      "cmp    r0, r1\n\t"
      "bne    1b\n\t"
      "ldmia  r2!, {r0, r1, r3}\n\t"
      MP_RQ_REGS_ASM("r4", "r0", "r1", "r3", "r12")
      MP_RQ_REGS_ASM("r6", "r0", "r1", "r3", "r12")
      MP_RQ_REGS_ASM("r8", "r0", "r1", "r3", "r12")
      MP_RQ_REGS_ASM("r10", "r0", "r1", "r3", "r12")
      "ldmia  r2!, {r0, r1, r3}\n\t"
      MP_RQ_REGS_ASM("r5", "r0", "r1", "r3", "r12")
      MP_RQ_REGS_ASM("r7", "r0", "r1", "r3", "r12")
      MP_RQ_REGS_ASM("r9", "r0", "r1", "r3", "r12")
      MP_RQ_REGS_ASM("r11", "r0", "r1", "r3", "r12")
      "ldr    r3, [sp, #16]\n\t"
      "ldr    r0, [sp, #20]\n\t"
      "bfi    r4, r5, #8, #8\n\t"
      "ldr    r1, [sp, #24]\n\t"
      "bfi    r6, r7, #8, #8\n\t"
      "strh   r4, [r0, r3]\n\t"
      "ldr    r0, [sp, #28]\n\t"
      "bfi    r8, r9, #8, #8\n\t"
      "strh   r6, [r1, r3]\n\t"
      "ldr    r1, [sp, #32]\n\t"
      "bfi    r10, r11, #8, #8\n\t"
      "strh   r8, [r0, r3]\n\t"
      "strh   r10, [r1, r3]\n\t"
      "add    r3, r3, #2\n\t"
      "str    r3, [sp, #16]\n\t"
      "ldr    r12, [sp]\n\t"
      "cmp    r2, r12\n\t"
      "bne    2b\n\t"
      "add    sp, sp, #36\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#endif
static void conv_mm_quads_wide(conv_quads_t *s, int32_t groups) {
  s->skip = (4 - (groups & 3)) & 3;
  conv_mm_quads_wide_asm(s);
}
#else
static void conv_mm_quads_wide(conv_quads_t *s, int32_t groups) {
  const int8_t *w = s->w;
  for (int32_t off = 0; w != s->w_end; off += 2, w += 8 * MP_REQUANT_TABLE_WORDS) {
    int32_t a[2][4];
    for (int32_t c = 0; c < 2; ++c)
      for (int32_t px = 0; px < 4; ++px) a[c][px] = (int32_t)mp_load32(w + 4 * c);
    w += 8;
    const uint32_t *col = s->col;
    for (int32_t g = 0; g < groups; ++g, col += 8, w += 16) {
      for (int32_t half = 0; half < 2; ++half) {
        const uint32_t w0 = mp_load32(w + 8 * half), w1 = mp_load32(w + 8 * half + 4);
        for (int32_t px = 0; px < 4; ++px) {
          a[0][px] = mp_smlad(col[4 * half + px], w0, a[0][px]);
          a[1][px] = mp_smlad(col[4 * half + px], w1, a[1][px]);
        }
      }
    }
    const int32_t *t = (const int32_t *)(const void *)w; /* word-aligned: the SRAM copy */
    for (int32_t px = 0; px < 4; ++px) {
      s->out[px][off] = mp_requant_table_out(t, a[0][px]);
      s->out[px][off + 1] = mp_requant_table_out(t + MP_REQUANT_TABLE_WORDS, a[1][px]);
    }
  }
}
static void conv_mm_pairs(conv_pairs_t *s, int32_t groups) {
  const int8_t *w = s->w;
  for (; w != s->w_end; s->acc += 4) {
    int32_t a00, a01;
    memcpy(&a00, w, 4);
    memcpy(&a01, w + 4, 4);
    w += 8;
    int32_t a10 = a00, a11 = a01;
    const uint32_t *c = s->col;
    for (int32_t g = 0; g < groups; ++g, c += 4, w += 8) CONV_MAC_GROUP(c, w, w + 4, a00, a01, a10, a11);
    s->acc[0] = a00;
    s->acc[1] = a01;
    s->acc[2] = a10;
    s->acc[3] = a11;
  }
}
#endif

/* The scratch the DSP path needs before the optional weight copy (must agree with
 * bench_firmware/ops/conv.py conv_scratch_bytes()). */
static uint32_t conv_dsp_scratch(const mp_conv_job_t *j) {
  return (conv_direct(j) ? 4u * j->p->row_bytes : 5u * j->p->row_bytes + 4u) +
         (8u + 4u * MP_REQUANT_TABLE_WORDS) * (uint32_t)j->d.out_c;
}

/* Bytes of the 8-bit weight stream (file comment). */
static inline uint32_t conv_stream_bytes(int32_t out_c, uint32_t row_bytes) {
  return (uint32_t)out_c * row_bytes + 8u * (uint32_t)(out_c / 2);
}

/* Bytes of one channel pair in the widened stream: biases, weights, table words. */
static inline uint32_t conv_wide_pair_bytes(uint32_t row_bytes) {
  return 8u + 4u * row_bytes + 8u * MP_REQUANT_TABLE_WORDS;
}

/* Bytes of the widened stream (conv_widen_stream), which the SRAM copy holds on the boards
 * whose compiler rule gives it the room (bench_firmware/ops/conv.py conv_extra_scratch). */
static inline uint32_t conv_wide_bytes(int32_t out_c, uint32_t row_bytes) {
  return (uint32_t)(out_c / 2) * conv_wide_pair_bytes(row_bytes) +
         (uint32_t)(out_c & 1) * row_bytes;
}

/* The 8-bit stream at `from` widened into `w`: per pair the two biases, then per group of four
 * k the words SXTB16 and SXTB16 ROR #8 make of row 2p's word and of row 2p + 1's, the
 * halfword pairs the 8-bit loop would make of them in registers, then the two channels'
 * words of the requantization table; an odd last row stays 8-bit. `from` may be `w` itself
 * (4-bit weights unpacked there first): back to front, every word is read before anything
 * lands on it (each destination lies at or after its source). */
static void conv_widen_stream(int8_t *w, const int8_t *from, int32_t out_c, int32_t row_bytes,
                              const int32_t *table) {
  const int32_t pairs = out_c / 2, groups = row_bytes / 4;
  const int32_t src_pair = 8 + 2 * row_bytes;
  const int32_t dst_pair = (int32_t)conv_wide_pair_bytes((uint32_t)row_bytes);
  if (out_c & 1) memmove(w + pairs * dst_pair, from + pairs * src_pair, (size_t)row_bytes);
  for (int32_t q = pairs - 1; q >= 0; --q) {
    const int8_t *src = from + q * src_pair;
    uint32_t *dst = (uint32_t *)(void *)(w + q * dst_pair);
#if defined(MP_CORTEX_M7) && defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && \
    defined(__thumb2__)
    /* The same loop scheduled for dual issue: both loads in one cycle (different banks),
     * then each SXTB16 with its store: 6 cycles a group in the model's scheduler
     * (timing/m7.py), against 10 as GCC orders it at -Os; reading the plan in flash, the L1
     * line refills add about 3. */
    const int8_t *s_end = src + 8 + 8 * groups;
    uint32_t *d_end = dst + 2 + 4 * groups;
    int32_t n = groups;
    uint32_t a, b, t0, t1;
    __asm__ volatile(
        "1:\n\t"
        "ldr    %[b], [%[s], #-4]\n\t"
        "ldr    %[a], [%[s], #-8]!\n\t"
        "subs   %[n], %[n], #1\n\t"
        "sub    %[d], %[d], #16\n\t"
        "sxtb16 %[t0], %[a]\n\t"
        "str    %[t0], [%[d]]\n\t"
        "sxtb16 %[t1], %[b]\n\t"
        "str    %[t1], [%[d], #4]\n\t"
        "sxtb16 %[t0], %[a], ror #8\n\t"
        "str    %[t0], [%[d], #8]\n\t"
        "sxtb16 %[t1], %[b], ror #8\n\t"
        "str    %[t1], [%[d], #12]\n\t"
        "bne    1b\n\t"
        : [s] "+r"(s_end), [d] "+r"(d_end), [n] "+r"(n), [a] "=&r"(a), [b] "=&r"(b),
          [t0] "=&r"(t0), [t1] "=&r"(t1)
        :
        : "cc", "memory");
#else
    for (int32_t g = groups - 1; g >= 0; --g) {
      const uint32_t a = mp_load32(src + 8 + 8 * g), b = mp_load32(src + 12 + 8 * g);
      dst[2 + 4 * g] = mp_sxtb16(a);
      dst[3 + 4 * g] = mp_sxtb16(b);
      dst[4 + 4 * g] = mp_sxtb16_ror8(a);
      dst[5 + 4 * g] = mp_sxtb16_ror8(b);
    }
#endif
    const uint32_t b0 = mp_load32(src), b1 = mp_load32(src + 4);
    dst[0] = b0;
    dst[1] = b1;
    for (int32_t k = 0; k < 2 * MP_REQUANT_TABLE_WORDS; ++k)
      dst[2 + 4 * groups + k] = (uint32_t)table[2 * MP_REQUANT_TABLE_WORDS * q + k];
  }
}

/* 4-bit weights unpacked into `dst` as the 8-bit stream (file comment), two rows at a time
 * through `tmp` (2 * row_bytes). */
static void conv_unpack4(int8_t *dst, const int8_t *packed, const int32_t *bias, int32_t out_c,
                         int32_t row_bytes, int8_t *tmp) {
  const int32_t stride = (int32_t)mp_int4_row_bytes((uint32_t)row_bytes);
  const int32_t pairs = out_c / 2;
  for (int32_t q = 0; q < pairs; ++q) {
    memcpy(dst, bias + 2 * q, 8);
    dst += 8;
    mp_unpack_int4_row(tmp, packed + 2 * q * stride, row_bytes);
    mp_unpack_int4_row(tmp + row_bytes, packed + (2 * q + 1) * stride, row_bytes);
    for (int32_t g = 0; g < row_bytes / 4; ++g, dst += 8) {
      mp_copy_bytes(dst, tmp + 4 * g, 4);
      mp_copy_bytes(dst + 4, tmp + row_bytes + 4 * g, 4);
    }
  }
  if (out_c & 1) mp_unpack_int4_row(dst, packed + (out_c - 1) * stride, row_bytes);
}

/* An odd last channel (its row 8-bit, `last`) for the first `slots` pixels of the four-pixel
 * column, requantized (the short path) and stored at out[slot]. */
static void conv_wide_last_channel(const mp_conv_job_t *j, const int32_t *table,
                                   const int8_t *last, const uint32_t *col4, int32_t groups,
                                   int8_t *const *out, int32_t slots) {
  const int32_t c = j->d.out_c - 1;
  const int32_t *t = table + MP_REQUANT_TABLE_WORDS * c;
  for (int32_t s = 0; s < slots; ++s) {
    int32_t a = j->bias[c];
    for (int32_t g = 0; g < groups; ++g) {
      const uint32_t v = mp_load32(last + 4 * g);
      a = mp_smlad(col4[8 * g + s], mp_sxtb16(v), a);
      a = mp_smlad(col4[8 * g + 4 + s], mp_sxtb16_ror8(v), a);
    }
    out[s][c] = mp_requant_table_out(t, a);
  }
}

#if defined(MP_CORTEX_M7) /* set for the Cortex-M7 boards' builds only */
/* One pixel (slot 0 of the four-pixel column) by every channel pair of the widened stream,
 * requantized (the short path) and stored at out: a layer's last one or two pixels on the
 * Cortex-M7, which a block of four would run mostly empty (VWW's 3x3 maps: 9 pixels). Two
 * groups a pass, each load issuing beside a MAC or another load: 12 cycles a pass in the
 * model's scheduler (timing/m7.py), against about 23 for GCC's loop at -Os; an odd first
 * group goes alone. */
static __attribute__((noinline)) void conv_wide_pixel(const int8_t *w, const int8_t *w_end,
                                                      const uint32_t *col, int32_t groups,
                                                      int8_t *out) {
  const uint32_t *col_end = col + 8 * groups, *col2 = col + 8 * (groups & 1);
  for (; w != w_end; out += 2) {
    const uint32_t *ww = (const uint32_t *)(const void *)w; /* word-aligned: the SRAM copy */
    int32_t a0 = (int32_t)ww[0], a1 = (int32_t)ww[1];
    ww += 2;
    if (groups & 1) {
      a0 = mp_smlad(col[0], ww[0], mp_smlad(col[4], ww[2], a0));
      a1 = mp_smlad(col[0], ww[1], mp_smlad(col[4], ww[3], a1));
      ww += 4;
    }
    if (col2 != col_end) {
      const uint32_t *c = col2;
      uint32_t x0, x1, v0, v1, v2, v3;
      __asm__ volatile(
          "1:\n\t"
          "ldr    %[v0], [%[w]]\n\t"
          "ldr    %[v1], [%[w], #4]\n\t"
          "ldr    %[x0], [%[c]]\n\t"
          "ldr    %[v2], [%[w], #8]\n\t"
          "ldr    %[x1], [%[c], #16]\n\t"
          "ldr    %[v3], [%[w], #12]\n\t"
          "smlad  %[a0], %[x0], %[v0], %[a0]\n\t"
          "ldr    %[v0], [%[w], #16]\n\t"
          "smlad  %[a1], %[x0], %[v1], %[a1]\n\t"
          "ldr    %[v1], [%[w], #20]\n\t"
          "smlad  %[a0], %[x1], %[v2], %[a0]\n\t"
          "ldr    %[x0], [%[c], #32]\n\t"
          "smlad  %[a1], %[x1], %[v3], %[a1]\n\t"
          "ldr    %[v2], [%[w], #24]\n\t"
          "ldr    %[x1], [%[c], #48]\n\t"
          "ldr    %[v3], [%[w], #28]\n\t"
          "smlad  %[a0], %[x0], %[v0], %[a0]\n\t"
          "adds   %[w], %[w], #32\n\t"
          "smlad  %[a1], %[x0], %[v1], %[a1]\n\t"
          "adds   %[c], %[c], #64\n\t"
          "smlad  %[a0], %[x1], %[v2], %[a0]\n\t"
          "cmp    %[c], %[e]\n\t"
          "smlad  %[a1], %[x1], %[v3], %[a1]\n\t"
          "bne    1b\n\t"
          : [a0] "+r"(a0), [a1] "+r"(a1), [c] "+r"(c), [w] "+r"(ww), [x0] "=&r"(x0),
            [x1] "=&r"(x1), [v0] "=&r"(v0), [v1] "=&r"(v1), [v2] "=&r"(v2), [v3] "=&r"(v3)
          : [e] "r"(col_end)
          : "cc", "memory");
    }
    const int32_t *t = (const int32_t *)(const void *)ww; /* the pair's table words */
    out[0] = mp_requant_table_out(t, a0);
    out[1] = mp_requant_table_out(t + MP_REQUANT_TABLE_WORDS, a1);
    w = (const int8_t *)(const void *)(t + 2 * MP_REQUANT_TABLE_WORDS);
  }
}
#endif

/* What the pixel loops need to find a pixel's column (conv_pixel_src). A first layer's
 * windows are copied as whole words (kernel rows of at most three words, dilation 1 along the
 * row; `words` is 0 where that does not apply): a window starting at (iy0, ix0) qualifies when
 * 0 <= iy0 <= iy_max and 0 <= ix0 <= ix_max (inside the input) and its last word read ends
 * by `end`. */
typedef struct {
  const mp_conv_job_t *j;
  const int8_t *in_b;
  int8_t *tmp;
  uint32_t off2;
  int spans;
  uint32_t iy_max, ix_max;
  int32_t words, src_step, span, last;
  const int8_t *end;
} conv_src_t;

static void conv_src_init(const mp_conv_job_t *j, conv_src_t *c, int8_t *tmp, uint32_t off2,
                          int spans) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  c->j = j;
  c->tmp = tmp;
  c->off2 = off2;
  c->spans = spans;
  c->words = 0;
  c->span = p->kernel_w * d->in_c;
  if (p->dilation_w != 1 || c->span > 12 || d->in_w < p->kernel_w ||
      d->in_h <= (p->kernel_h - 1) * p->dilation_h)
    return;
  c->words = (c->span + 3) >> 2;
  c->iy_max = (uint32_t)(d->in_h - 1 - (p->kernel_h - 1) * p->dilation_h);
  c->ix_max = (uint32_t)(d->in_w - p->kernel_w);
  c->src_step = p->dilation_h * d->in_w * d->in_c;
  c->last = (p->kernel_h - 1) * c->src_step + 4 * c->words;
  c->end = j->input + d->batches * d->in_h * d->in_w * d->in_c;
}

/* A window's kernel rows copied from src to o as whole words (conv_src_t `words` of them a
 * row). LDR and STR take any alignment (ARMv7-M ARM A3.2.1). A row's last word carries up to
 * 3 bytes past its span, which the next row overwrites, or, after the last row, the column's
 * padding (its weights are 0: whatever it holds adds nothing) and what follows the column:
 * 4 bytes of slack (conv_dsp_scratch), or the next window of a block of four, written after
 * it. The input is read no further than its end (the callers check c->last against c->end). */
static inline void conv_copy_window(const conv_src_t *c, const int8_t *src, int8_t *o) {
  const int32_t words = c->words, span = c->span, step = c->src_step;
  for (int32_t ky = c->j->p->kernel_h; ky > 0; --ky, o += span, src += step) {
    const uint32_t v0 = mp_load32(src);
    if (words > 1) {
      const uint32_t v1 = mp_load32(src + 4);
      if (words > 2) {
        const uint32_t v2 = mp_load32(src + 8);
        memcpy(o + 8, &v2, 4);
      }
      memcpy(o + 4, &v1, 4);
    }
    memcpy(o, &v0, 4);
  }
}

/* The int8 source to widen for output pixel (oy, ox) of a layer that does not read the input
 * directly: its window copied into c->tmp (row_bytes and 4 bytes of slack) as whole words or
 * gathered there (conv_gather); NULL when its window was widened straight into `dst`
 * (spans). */
static const int8_t *conv_pixel_src(const conv_src_t *c, int32_t oy, int32_t ox, uint32_t *dst,
                                    int quad) {
  const mp_conv_job_t *j = c->j;
  const mp_conv_params_t *p = j->p;
  if (c->spans && conv_widen_window(j, c->in_b, oy, ox, dst, c->off2, quad)) return 0;
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  if (c->words != 0 && (uint32_t)iy0 <= c->iy_max && (uint32_t)ix0 <= c->ix_max) {
    const int8_t *src = c->in_b + (iy0 * j->d.in_w + ix0) * j->d.in_c;
    if (src + c->last <= c->end) {
      conv_copy_window(c, src, c->tmp);
      return c->tmp;
    }
  }
  conv_gather(j, c->in_b, oy, ox, c->tmp);
  return c->tmp;
}

#if defined(MP_CORTEX_M7)
/* Output pixels (oy, ox) to (oy, ox + 3), one row, whose windows all lie inside the input:
 * their windows copied as whole words (conv_copy_window) side by side at dst, row_bytes
 * apart, with one call and one bounds check for the four; 0 when any does not qualify (the
 * caller then takes them one at a time, conv_pixel_src). */
static __attribute__((noinline)) int conv_gather4_row(const conv_src_t *c, int32_t oy,
                                                      int32_t ox, int8_t *dst,
                                                      int32_t row_bytes) {
  const mp_conv_job_t *j = c->j;
  const mp_conv_params_t *p = j->p;
  const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
  const int32_t step = p->stride_w * j->d.in_c; /* from one window to the next */
  if (c->words == 0 || (uint32_t)iy0 > c->iy_max || (uint32_t)ix0 > c->ix_max ||
      (uint32_t)(ix0 + 3 * p->stride_w) > c->ix_max)
    return 0;
  const int8_t *src = c->in_b + (iy0 * j->d.in_w + ix0) * j->d.in_c;
  if (src + 3 * step + c->last > c->end) return 0;
  for (int32_t s = 0; s < 4; ++s, src += step, dst += row_bytes) conv_copy_window(c, src, dst);
  return 1;
}
#endif

/* Pixel (oy, ox)'s input, where the layer reads it directly (conv_direct). */
static inline const int8_t *conv_direct_src(const mp_conv_job_t *j, const int8_t *in_b,
                                            int32_t oy, int32_t ox) {
  return in_b + (oy * j->p->stride_h * j->d.in_w + ox * j->p->stride_w) * j->d.in_c;
}

/* `weights_sram`: room after the scratch for a copy of the weights, or NULL; `wide_room`:
 * whether it holds the widened stream and the four-pixel column after it. The compiler gives
 * that room where reading the weights from SRAM pays (bench_firmware/ops/conv.py
 * conv_extra_scratch): the rows are copied once, then every pixel block reads them from SRAM.
 * The widened copy serves the four-pixel loop, which requantizes in place: it is used where
 * the requantization takes the short path; otherwise the copy holds the 8-bit stream. */
static void conv_dsp(const mp_conv_job_t *j, uint8_t *scratch, int8_t *weights_sram,
                     int wide_room) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t row_bytes = (int32_t)p->row_bytes, groups = row_bytes / 4;
  const int32_t in_c = d->in_c, out_c = d->out_c;
  const int32_t n_pix = d->out_h * d->out_w;
  const uint32_t off2 = mp_pack16(p->input_offset, p->input_offset);
  const int direct = conv_direct(j);
  uint32_t *col = (uint32_t *)(void *)scratch;
  int32_t *acc = (int32_t *)(void *)(scratch + 4 * row_bytes);
  int32_t *table = acc + 2 * out_c;
  int8_t *tmp = (int8_t *)(table + MP_REQUANT_TABLE_WORDS * out_c);
  mp_requant_t rq;
  mp_requant_init(&rq, j->mult, j->shift, out_c, p->output_offset, p->act_min, p->act_max,
                  table, j->bias, p->kernel_h * p->kernel_w * in_c);
  const int wide = wide_room && rq.fast;
  const int8_t *weights = j->weights;
  if (weights_sram != 0) {
    const int8_t *stream = j->weights;
    if (p->weight_bits == 4u) {
      conv_unpack4(weights_sram, j->weights, j->bias, out_c, row_bytes, (int8_t *)col);
      stream = weights_sram;
    }
    if (wide)
      conv_widen_stream(weights_sram, stream, out_c, row_bytes, table);
    else if (stream != weights_sram)
      mp_copy_bytes(weights_sram, stream, (int32_t)conv_stream_bytes(out_c, p->row_bytes));
    weights = weights_sram;
  }
  const int32_t pairs = out_c / 2;
  /* an odd last channel's row */
  const int8_t *last =
      weights + pairs * (wide ? (int32_t)conv_wide_pair_bytes(p->row_bytes) : 8 + 2 * row_bytes);
  /* Kernel rows of whole words filling the row exactly (channels a multiple of 4, dilation 1
   * along the row): an interior window's column is its kernel rows' spans, widened in place
   * (conv_widen_window). */
  const int spans = !direct && (in_c & 3) == 0 && p->dilation_w == 1 &&
                    p->kernel_h * p->kernel_w * in_c == row_bytes;
  conv_src_t cs;
  conv_src_init(j, &cs, tmp, off2, spans);
  for (int32_t b = 0; b < d->batches; ++b) {
    const int8_t *in_b = j->input + b * d->in_h * d->in_w * in_c;
    int8_t *out_b = j->output + b * n_pix * out_c;
    cs.in_b = in_b;
    if (wide) {
      /* Four pixels a block, the last block's missing pixels repeating its last one. */
      uint32_t *col4 = (uint32_t *)(void *)(weights_sram + conv_wide_bytes(out_c, p->row_bytes));
      /* A 1x1 kernel at stride 1 reads input pixel q for output pixel q. A layer whose windows
       * are gathered (not read in place, not widened from the input's rows) gathers its four
       * into the pixel-pair column, unused here (4 * row_bytes, the accumulators after it
       * taking a last row's slack), and widens them in one pass. */
      const int linear = direct && p->stride_h == 1 && p->stride_w == 1;
#if defined(MP_CORTEX_M7)
      const int gather4 = !direct && !spans;
#else
      const int gather4 = 0; /* no faster on the Cortex-M4 twins, and its flash is budgeted */
#endif
      conv_quads_t st = {last, col4, col4 + 8 * groups, 0, 0, {0, 0, 0, 0}, weights};
      int32_t oy = 0, ox = 0, qy = 0, qx = 0; /* the next pixel; the one in the slot */
      for (int32_t pix = 0; pix < n_pix; pix += 4) {
#if defined(MP_CORTEX_M7)
        if (n_pix - pix <= 2) { /* the last one or two pixels: conv_wide_pixel */
          for (; pix < n_pix; ++pix) {
            const int32_t py = pix / d->out_w, px = pix - py * d->out_w;
            int8_t *o = out_b + pix * out_c;
            const int8_t *src = direct ? conv_direct_src(j, in_b, py, px)
                                       : conv_pixel_src(&cs, py, px, col4, 1);
            if (src != 0) conv_widen4(src, col4, groups, off2);
            conv_wide_pixel(weights, st.w_end, col4, groups, o);
            if (out_c & 1) conv_wide_last_channel(j, table, last, col4, groups, &o, 1);
          }
          break;
        }
#endif
        if (linear && pix + 4 <= n_pix) {
          for (int32_t s = 0; s < 4; ++s) st.out[s] = out_b + (pix + s) * out_c;
          conv_widen4x(in_b + pix * in_c, in_c, col4, groups, off2);
#if defined(MP_CORTEX_M7)
        } else if (gather4 && ox + 4 <= d->out_w && pix + 4 <= n_pix &&
                   conv_gather4_row(&cs, oy, ox, (int8_t *)col, row_bytes)) {
          for (int32_t s = 0; s < 4; ++s) st.out[s] = out_b + pix * out_c + s * out_c;
          ox += 4;
          if (ox == d->out_w) {
            ox = 0;
            ++oy;
          }
#endif
        } else for (int32_t s = 0; s < 4; ++s) {
          if (linear) {
            const int32_t q = pix + s < n_pix ? pix + s : n_pix - 1;
            st.out[s] = out_b + q * out_c;
            conv_widen4(in_b + q * in_c, col4 + s, groups, off2);
            continue;
          }
          if (pix + s < n_pix) {
            qy = oy;
            qx = ox;
            if (++ox == d->out_w) {
              ox = 0;
              ++oy;
            }
          }
          st.out[s] = out_b + (qy * d->out_w + qx) * out_c;
          if (gather4) { /* the four windows side by side in the pixel-pair column */
            cs.tmp = (int8_t *)col + s * row_bytes;
            conv_pixel_src(&cs, qy, qx, 0, 1);
            continue;
          }
          const int8_t *src = direct ? conv_direct_src(j, in_b, qy, qx)
                                     : conv_pixel_src(&cs, qy, qx, col4 + s, 1);
          if (src != 0) conv_widen4(src, col4 + s, groups, off2);
        }
        if (gather4) conv_widen4x((const int8_t *)col, row_bytes, col4, groups, off2);
        if (pairs > 0) conv_mm_quads_wide(&st, groups);
        if (out_c & 1) conv_wide_last_channel(j, table, last, col4, groups, st.out, 4);
      }
      continue;
    }
    for (int32_t pix = 0; pix < n_pix; pix += 2) {
      const int pair = pix + 1 < n_pix;
      for (int32_t s = 0; s < 2; ++s) {
        const int32_t q = pix + (pair ? s : 0);
        const int32_t oy = q / d->out_w, ox = q - oy * d->out_w;
        const int8_t *src = direct ? conv_direct_src(j, in_b, oy, ox)
                                   : conv_pixel_src(&cs, oy, ox, col + 2 * s, 0);
        if (src != 0) conv_widen(src, col + 2 * s, groups, off2);
      }
      if (pairs > 0) {
        conv_pairs_t st = {col, col + 4 * groups, acc, last, weights, 0};
        conv_mm_pairs(&st, groups);
      }
      if (out_c & 1) { /* the last channel, as a pair with itself */
        int32_t a00 = j->bias[out_c - 1], a01 = a00, a10 = a00, a11 = a00;
        const uint32_t *c = col;
        for (int32_t g = 0; g < groups; ++g, c += 4) {
          const int8_t *wg = last + 4 * g;
          CONV_MAC_GROUP(c, wg, wg, a00, a01, a10, a11);
        }
        acc[4 * pairs] = a00;
        acc[4 * pairs + 1] = a10;
      }
      int8_t *out0 = out_b + pix * out_c;
      /* A lone last pixel was computed as a pair with itself: both results are the same
       * bytes, written to the same place. */
      mp_requant_pairs(&rq, acc, out0, pair ? out0 + out_c : out0, out_c);
    }
  }
}

mp_status_t mp_op_conv2d(const mp_op_ctx_t *ctx) {
  mp_conv_job_t j;
  if (mp_conv_job_init(ctx, &j) != MP_OK) return MP_ERR_OP;
  const mp_conv_params_t *p = j.p;
  if (p->row_bytes < (uint32_t)p->kernel_h * p->kernel_w * (uint32_t)j.d.in_c) return MP_ERR_OP;
  uint8_t *scratch = (uint8_t *)mp_scratch(ctx, p->scratch_off, p->scratch_bytes);
  const uint32_t needed = conv_dsp_scratch(&j);
  const uint32_t weight_bytes = conv_stream_bytes(j.d.out_c, p->row_bytes);
  if (p->weight_bits != 8u && p->weight_bits != 4u) return MP_ERR_OP;
  /* A plan without the scratch buffer (not from our compiler) still runs, on the reference
   * loops; so do 4-bit weights without the room to unpack them. */
  int8_t *copy = 0;
  const int dsp = ctx->path == MP_KERNELS_DSP && scratch != 0 && p->scratch_bytes >= needed &&
                  p->row_bytes >= 4u && (p->row_bytes & 3u) == 0;
  if (dsp && p->scratch_bytes - needed >= weight_bytes) copy = (int8_t *)(scratch + needed);
  /* The room for the widened stream and the four-pixel column: the compiler gives it where
   * that pays (conv.py). */
  const int wide = copy != 0 && p->scratch_bytes - needed >=
                                    conv_wide_bytes(j.d.out_c, p->row_bytes) +
                                        8u * p->row_bytes + 8u;
  if (dsp && (copy != 0 || p->weight_bits == 8u))
    conv_dsp(&j, scratch, copy, wide);
  else
    conv_ref(&j);
  return MP_OK;
}
