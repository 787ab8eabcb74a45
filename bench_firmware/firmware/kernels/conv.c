/* CONV_2D, int8 with per-channel quantization: TFLM reference_integer_ops::ConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/conv.h).
 *
 * Weights (bench_firmware/ops/conv.py): [out_c][row_bytes], each row the output channel's
 * OHWI filter (kh * kw * in_c bytes) padded to a word; with weight_bits 4, each row packed
 * two weights per byte (mp_kernels.h), which the reference loops read nibble by nibble and
 * the DSP path unpacks into its SRAM copy once per layer. Taps outside the input are skipped,
 * as in TFLM: the padded input would be -input_offset, whose offset-corrected value is 0.
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
          const int8_t *row = j->weights + oc * row_stride;
          int32_t acc = 0;
          for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation_h;
            for (int32_t kx = 0; kx < kw; ++kx) {
              const int32_t ix = ix0 + kx * p->dilation_w;
              if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
              const int8_t *x = j->input + ((b * d->in_h + iy) * d->in_w + ix) * d->in_c;
              const int32_t k0 = (ky * kw + kx) * d->in_c;
              for (int32_t ic = 0; ic < d->in_c; ++ic) {
                const int32_t w = bits4 ? mp_int4_at(row, k0 + ic) : (int32_t)row[k0 + ic];
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
 * matching products without reordering anything. Each pass of the inner loop loads four
 * column words and two weight words (one per output channel), extends the weights, and does
 * 8 SMLADs (16 MACs) into four accumulators: 2 channels x 2 pixels.
 *
 * Taps outside the input are gathered as the input zero point (-input_offset), which widens
 * to 0, so they add nothing, as TFLM's skipped taps. A 1x1 kernel over a multiple of four
 * channels needs no gathering: the pixel's channels are its column. Rows of weights are
 * padded with zeros to row_bytes, so the padded column bytes add nothing either.
 *
 * Scratch (arena, planned by bench_firmware/planner.py): the int16 buffer, 4 * row_bytes;
 * the two pixels' int32 accumulator rows, 8 * out_c; the requantization table (mp_requant.h),
 * 8 * out_c; one pixel's int8 column, row_bytes (not used by the 1x1 path); and, when the
 * compiler gave the room (bench_firmware/ops/conv.py conv_extra_scratch), a copy of the weights,
 * out_c * row_bytes, made once per layer so the pixel pairs read them from SRAM, not flash.
 * An odd last pixel is computed as a pair with itself, an odd last
 * channel with its own row twice; the duplicate results are not kept. Each accumulator row
 * is requantized by mp_requant_row(), equal to mp_requantize_output() bit for bit. */

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
  int32_t kx_lo, kx_hi;
  mp_tap_range(ix0, p->dilation_w, kw, d->in_w, &kx_lo, &kx_hi);
  int8_t *end = dst + p->row_bytes;
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

/* Widens `groups` words of int8 at src, plus the offset, into slot 0 or 1 (col already points
 * at the slot) of the interleaved buffer. */
static void conv_widen(const int8_t *src, uint32_t *col, int32_t groups, uint32_t off2) {
  for (int32_t g = 0; g < groups; ++g, src += 4, col += 4) {
    const uint32_t v = mp_load32(src);
    col[0] = mp_sxtab16(off2, v);
    col[1] = mp_sxtab16_ror8(off2, v);
  }
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

/* Every pair of output channels (oc, oc + 1), oc < 2 * pairs, for one pixel pair: the
 * inner product of the pixel pair's column with the two channels' weight rows, `groups` groups
 * of four k, started from the channels' biases and stored to the accumulator rows (pixel 0's
 * at acc0, pixel 1's acc_stride bytes further). Rows of weights are consecutive and
 * row_bytes = 4 * groups, so after a pair's loop its first row pointer is at the second row
 * and the second at the next pair's first. */
typedef struct {
  const uint32_t *col;     /* +0 */
  const uint32_t *col_end; /* +4 */
  const int32_t *bias;     /* +8, advances by two channels per pair */
  int32_t *acc0;           /* +12, likewise */
  int32_t acc_stride;      /* +16, bytes */
  int32_t pairs;           /* +20, counts down */
  const int8_t *w0, *w1;   /* +24, +28 */
} conv_pairs_t;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* Hand-scheduled: the inner loop needs all fourteen registers (4 accumulators, 4 column
 * words, 2 weight temporaries, 4 pointers), which GCC cannot allocate around C code, so
 * the whole channel loop is one naked function keeping its state in `s` (on the stack).
 * Per group: LDM of the four column words, two weight loads, four SXTB16, eight SMLAD. */
__attribute__((naked, noinline)) static void conv_mm_pairs(conv_pairs_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "push   {r0}\n\t"
      "ldr    r1, [r0, #4]\n\t"        /* col_end */
      "ldr    r2, [r0, #24]\n\t"       /* w0 */
      "ldr    r3, [r0, #28]\n\t"       /* w1 */
      "2:\n\t"
      "ldr    r12, [sp]\n\t"
      "ldr    lr, [r12, #8]\n\t"       /* bias */
      "ldrd   r4, r5, [lr], #8\n\t"
      "str    lr, [r12, #8]\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r5\n\t"
      "ldr    r0, [r12]\n\t"           /* column */
      "1:\n\t"
      "ldmia  r0!, {r8, r9, r10, r11}\n\t"
      "ldr    r12, [r2], #4\n\t"
      "sxtb16 lr, r12\n\t"
      "sxtb16 r12, r12, ror #8\n\t"
      "smlad  r4, r8, lr, r4\n\t"
      "smlad  r6, r10, lr, r6\n\t"
      "smlad  r4, r9, r12, r4\n\t"
      "smlad  r6, r11, r12, r6\n\t"
      "ldr    r12, [r3], #4\n\t"
      "sxtb16 lr, r12\n\t"
      "sxtb16 r12, r12, ror #8\n\t"
      "smlad  r5, r8, lr, r5\n\t"
      "smlad  r7, r10, lr, r7\n\t"
      "smlad  r5, r9, r12, r5\n\t"
      "smlad  r7, r11, r12, r7\n\t"
      "cmp    r0, r1\n\t"
      "bne    1b\n\t"
      "ldr    r12, [sp]\n\t"
      "ldr    lr, [r12, #12]\n\t"      /* acc0 */
      "ldr    r8, [r12, #16]\n\t"      /* acc_stride */
      "add    r9, lr, r8\n\t"
      "strd   r6, r7, [r9]\n\t"
      "strd   r4, r5, [lr], #8\n\t"
      "str    lr, [r12, #12]\n\t"
      "rsb    r8, r2, r3, lsl #1\n\t"  /* next pair: w0 = w1, w1 = w1 + row_bytes */
      "mov    r2, r3\n\t"
      "mov    r3, r8\n\t"
      "ldr    r8, [r12, #20]\n\t"
      "subs   r8, r8, #1\n\t"
      "str    r8, [r12, #20]\n\t"
      "bne    2b\n\t"
      "pop    {r0}\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#else
static void conv_mm_pairs(conv_pairs_t *s) {
  const int32_t groups = (int32_t)(s->col_end - s->col) / 4;
  const int32_t stride = s->acc_stride / 4;
  const int8_t *w0 = s->w0, *w1 = s->w1;
  for (; s->pairs > 0; --s->pairs, s->bias += 2, s->acc0 += 2) {
    int32_t a00 = s->bias[0], a01 = s->bias[1], a10 = a00, a11 = a01;
    const uint32_t *c = s->col;
    for (int32_t g = 0; g < groups; ++g, c += 4, w0 += 4, w1 += 4)
      CONV_MAC_GROUP(c, w0, w1, a00, a01, a10, a11);
    const int8_t *next = w1 + (w1 - w0);
    w0 = w1;
    w1 = next;
    s->acc0[0] = a00;
    s->acc0[1] = a01;
    s->acc0[stride] = a10;
    s->acc0[stride + 1] = a11;
  }
}
#endif

/* The scratch the DSP path needs before the optional weight copy (must agree with
 * bench_firmware/ops/conv.py conv_scratch_bytes()). */
static uint32_t conv_dsp_scratch(const mp_conv_job_t *j) {
  return (conv_direct(j) ? 4u : 5u) * j->p->row_bytes + 16u * (uint32_t)j->d.out_c;
}

/* `weights_sram`: room after the scratch for a copy of the weights, or NULL. The compiler
 * gives that room where reading the weights from SRAM pays (bench_firmware/ops/conv.py
 * conv_extra_scratch): the rows are copied once, then every pixel pair reads them from SRAM. */
static void conv_dsp(const mp_conv_job_t *j, uint8_t *scratch, int8_t *weights_sram) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t row_bytes = (int32_t)p->row_bytes, groups = row_bytes / 4;
  const int32_t in_c = d->in_c, out_c = d->out_c;
  const int32_t n_pix = d->out_h * d->out_w;
  const uint32_t off2 = mp_pack16(p->input_offset, p->input_offset);
  const int direct = conv_direct(j);
  uint32_t *col = (uint32_t *)(void *)scratch;
  int32_t *acc0 = (int32_t *)(void *)(scratch + 4 * row_bytes), *acc1 = acc0 + out_c;
  int32_t *table = acc1 + out_c;
  int8_t *tmp = (int8_t *)(table + 2 * out_c);
  const int8_t *weights = j->weights;
  if (weights_sram != 0) {
    if (p->weight_bits == 4u) {
      const int32_t stride = (int32_t)mp_int4_row_bytes((uint32_t)row_bytes);
      for (int32_t oc = 0; oc < out_c; ++oc)
        mp_unpack_int4_row(weights_sram + oc * row_bytes, j->weights + oc * stride, row_bytes);
    } else
      mp_copy_bytes(weights_sram, j->weights, out_c * row_bytes);
    weights = weights_sram;
  }
  mp_requant_t rq;
  mp_requant_init(&rq, j->mult, j->shift, out_c, p->output_offset, p->act_min, p->act_max,
                  table);
  for (int32_t b = 0; b < d->batches; ++b) {
    const int8_t *in_b = j->input + b * d->in_h * d->in_w * in_c;
    int8_t *out_b = j->output + b * n_pix * out_c;
    for (int32_t pix = 0; pix < n_pix; pix += 2) {
      const int pair = pix + 1 < n_pix;
      for (int32_t s = 0; s < 2; ++s) {
        const int32_t q = pix + (pair ? s : 0);
        const int32_t oy = q / d->out_w, ox = q - oy * d->out_w;
        const int8_t *src;
        if (direct) {
          src = in_b + (oy * p->stride_h * d->in_w + ox * p->stride_w) * in_c;
        } else {
          conv_gather(j, in_b, oy, ox, tmp);
          src = tmp;
        }
        conv_widen(src, col + 2 * s, groups, off2);
      }
      const int32_t pairs = out_c / 2;
      if (pairs > 0) {
        conv_pairs_t st = {col, col + 4 * groups, j->bias, acc0, 4 * out_c, pairs,
                           weights, weights + row_bytes};
        conv_mm_pairs(&st);
      }
      if (out_c & 1) { /* the last channel, as a pair with itself */
        const int32_t oc = out_c - 1;
        const int8_t *w0 = weights + oc * row_bytes;
        int32_t a00 = j->bias[oc], a01 = a00, a10 = a00, a11 = a00;
        const uint32_t *c = col;
        for (int32_t g = 0; g < groups; ++g, c += 4) {
          const int8_t *wg = w0 + 4 * g;
          CONV_MAC_GROUP(c, wg, wg, a00, a01, a10, a11);
        }
        acc0[oc] = a00;
        acc1[oc] = a10;
      }
      int8_t *out0 = out_b + pix * out_c;
      if (pair) /* acc1 = acc0 + out_c; pixel pix + 1's output follows pixel pix's */
        mp_requant_rows2(&rq, acc0, out0, out_c);
      else
        mp_requant_row(&rq, acc0, out0, out_c);
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
  const uint32_t weight_bytes = (uint32_t)j.d.out_c * p->row_bytes;
  if (p->weight_bits != 8u && p->weight_bits != 4u) return MP_ERR_OP;
  /* A plan without the scratch buffer (not from our compiler) still runs, on the reference
   * loops; so do 4-bit weights without the room to unpack them. */
  int8_t *copy = 0;
  const int dsp = ctx->path == MP_KERNELS_DSP && scratch != 0 && p->scratch_bytes >= needed &&
                  p->row_bytes >= 4u && (p->row_bytes & 3u) == 0;
  if (dsp && p->scratch_bytes - needed >= weight_bytes) copy = (int8_t *)(scratch + needed);
  if (dsp && (copy != 0 || p->weight_bits == 8u))
    conv_dsp(&j, scratch, copy);
  else
    conv_ref(&j);
  return MP_OK;
}
