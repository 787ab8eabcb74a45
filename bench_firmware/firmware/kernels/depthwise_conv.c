/* DEPTHWISE_CONV_2D, int8 with per-channel quantization: TFLM
 * reference_integer_ops::DepthwiseConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h).
 *
 * Weights (bench_firmware/ops/conv.py): [kh][kw][row_bytes], each tap's out_c weights padded
 * to a word; output channel oc = ic * depth_multiplier + m reads input channel ic. Taps
 * outside the input are skipped, as in TFLM.
 *
 * Two DSP paths for depth multiplier 1: the planar 3x3 path (above dw_planar(), when the
 * compiler gave its room) and the four-channel path (above dw_dsp_m1()); other depth
 * multipliers use the reference loops. All paths give identical bytes. */
#include <stdint.h>

#include "mp_acle.h"
#include "mp_fixedpoint.h"
#include "mp_conv_job.h"
#include "mp_kernels.h"
#include "mp_requant.h"


static inline int8_t dw_out(const mp_conv_params_t *p, int32_t acc, int32_t mult, int32_t shift) {
  return mp_requantize_output(acc, mult, shift, p->output_offset, p->act_min, p->act_max);
}

static void dw_ref(const mp_conv_job_t *j) {
  const mp_conv_params_t *p = j->p;
  const int32_t kh = p->kernel_h, kw = p->kernel_w, dm = p->depth_multiplier;
  const int32_t tap_bytes = (int32_t)p->row_bytes;
  for (int32_t b = 0; b < j->d.batches; ++b) {
    for (int32_t oy = 0; oy < j->d.out_h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      for (int32_t ox = 0; ox < j->d.out_w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int8_t *out = j->output + ((b * j->d.out_h + oy) * j->d.out_w + ox) * j->d.out_c;
        for (int32_t ic = 0; ic < j->d.in_c; ++ic) {
          for (int32_t m = 0; m < dm; ++m) {
            const int32_t oc = ic * dm + m;
            int32_t acc = 0;
            for (int32_t ky = 0; ky < kh; ++ky) {
              const int32_t iy = iy0 + ky * p->dilation_h;
              for (int32_t kx = 0; kx < kw; ++kx) {
                const int32_t ix = ix0 + kx * p->dilation_w;
                if (iy < 0 || iy >= j->d.in_h || ix < 0 || ix >= j->d.in_w) continue;
                const int32_t x = j->input[((b * j->d.in_h + iy) * j->d.in_w + ix) * j->d.in_c + ic];
                const int32_t w = j->weights[(ky * kw + kx) * tap_bytes + oc];
                acc += w * (x + p->input_offset);
              }
            }
            acc += j->bias[oc];
            out[oc] = dw_out(p, acc, j->mult[oc], j->shift[oc]);
          }
        }
      }
    }
  }
}

/* ---- DSP path, depth_multiplier == 1 ---------------------------------------------------
 *
 * Output channel c reads input channel c, so channels go four at a time through the SIMD
 * lanes: one word of input per tap, SXTAB16 (plus input_offset) and SXTAB16 ROR #8 split it
 * into the halfword pairs of channels (0, 2) and (1, 3), the tap's weight word likewise with
 * SXTB16, and SMLABB / SMLATT accumulate each lane into its channel's accumulator.
 *
 * The plan's DSP block (bench_firmware/ops/conv.py depthwise_dsp_block) holds, per group of
 * four channels, the kh*kw weight words in tap order, then the group's four biases: every
 * flash read of a group is sequential. A pixel whose 3x3 window lies inside the
 * input (dilation 1) runs the nine taps unrolled; border pixels loop over their in-bounds
 * taps (TFLM skips the others). Channels past the last multiple of four use plain loops.
 * A pixel's accumulators go to the scratch row (arena, 4 bytes per channel) and are
 * requantized together by mp_requant_row(), equal to mp_requantize_output() bit for bit; its
 * table (12 bytes per channel) follows the row in the scratch buffer. */

static inline void dw_tap4(const int8_t *x, const int8_t *w, uint32_t off2, int32_t *a0,
                           int32_t *a1, int32_t *a2, int32_t *a3) {
  const uint32_t xv = mp_load32(x), wv = mp_load32(w);
  const uint32_t xe = mp_sxtab16(off2, xv), xo = mp_sxtab16_ror8(off2, xv);
  const uint32_t we = mp_sxtb16(wv), wo = mp_sxtb16_ror8(wv);
  *a0 = mp_smlabb(xe, we, *a0);
  *a2 = mp_smlatt(xe, we, *a2);
  *a1 = mp_smlabb(xo, wo, *a1);
  *a3 = mp_smlatt(xo, wo, *a3);
}

/* The nine taps of a 3x3 window inside the input for four channels: x is the window's
 * top-left input (channel 0 of the group), c the bytes per pixel, row the bytes per input
 * row, w the group's nine weight words; acc[0..3] in and out. The target runs the
 * hand-scheduled dw_3x3_run() below instead. */
#if !(defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__))
static inline void dw_3x3_group(const int8_t *x, int32_t c, int32_t row, const int8_t *w,
                                uint32_t off2, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (int32_t ky = 0; ky < 3; ++ky, x += row)
    for (int32_t kx = 0; kx < 3; ++kx, w += 4) dw_tap4(x + kx * c, w, off2, &a0, &a1, &a2, &a3);
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}
#endif

/* A run of n output pixels of one row for one group of four channels, every window inside
 * what `x` points into: the pixel's accumulators start from the group's biases (after its nine
 * weight words in the DSP block) and go to acc, acc_step bytes apart; x advances x_step bytes
 * per pixel. On the target one hand-scheduled loop (the state the fourteen registers cannot
 * hold stays in `s`), so a pixel costs its nine taps and a few loads and stores around them. */
typedef struct {
  const int8_t *x;  /* +0 */
  int32_t c;        /* +4, bytes per input pixel */
  int32_t row;      /* +8, bytes per input row */
  const int8_t *w;  /* +12, the group's nine weight words, then its four biases */
  uint32_t off2;    /* +16 */
  int32_t *acc;     /* +20, advances acc_step bytes per pixel */
  int32_t n;        /* +24, counts down */
  int32_t x_step;   /* +28 */
  int32_t acc_step; /* +32 */
} dw_run_t;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
#define DW_RUN_TAP(xaddr, woff)             \
  "ldr    r8, " xaddr "\n\t"                \
  "ldr    r10, [r1, #" woff "]\n\t"         \
  "sxtab16 r9, r12, r8\n\t"                 \
  "sxtab16 r8, r12, r8, ror #8\n\t"         \
  "sxtb16 r11, r10\n\t"                     \
  "sxtb16 r10, r10, ror #8\n\t"             \
  "smlabb r4, r9, r11, r4\n\t"              \
  "smlatt r6, r9, r11, r6\n\t"              \
  "smlabb r5, r8, r10, r5\n\t"              \
  "smlatt r7, r8, r10, r7\n\t"
__attribute__((naked, noinline)) static void dw_3x3_run(dw_run_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "push   {r0}\n\t"
      "ldr    r12, [r0, #16]\n\t" /* off2 */
      "ldr    r1, [r0, #12]\n\t"  /* w */
      "ldr    r2, [r0, #4]\n\t"   /* c */
      "ldr    r3, [r0, #8]\n\t"   /* row */
      "ldr    r0, [r0]\n\t"       /* x */
      "2:\n\t"
      "ldrd   r4, r5, [r1, #36]\n\t" /* biases */
      "ldrd   r6, r7, [r1, #44]\n\t"
      DW_RUN_TAP("[r0]", "0")
      DW_RUN_TAP("[r0, r2]", "4")
      DW_RUN_TAP("[r0, r2, lsl #1]", "8")
      "add    lr, r0, r3\n\t"
      DW_RUN_TAP("[lr]", "12")
      DW_RUN_TAP("[lr, r2]", "16")
      DW_RUN_TAP("[lr, r2, lsl #1]", "20")
      "add    lr, lr, r3\n\t"
      DW_RUN_TAP("[lr]", "24")
      DW_RUN_TAP("[lr, r2]", "28")
      DW_RUN_TAP("[lr, r2, lsl #1]", "32")
      "ldr    lr, [sp]\n\t"
      "ldr    r8, [lr, #20]\n\t"  /* acc */
      "ldr    r9, [lr, #32]\n\t"  /* acc_step */
      "stmia  r8, {r4, r5, r6, r7}\n\t"
      "add    r8, r8, r9\n\t"
      "str    r8, [lr, #20]\n\t"
      "ldr    r9, [lr, #28]\n\t"  /* x_step */
      "ldr    r10, [lr, #24]\n\t" /* n */
      "add    r0, r0, r9\n\t"
      "subs   r10, r10, #1\n\t"
      "str    r10, [lr, #24]\n\t"
      "bne    2b\n\t"
      "pop    {r0}\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#else
static void dw_3x3_run(dw_run_t *s) {
  const int32_t *q = (const int32_t *)(const void *)(s->w + 36);
  for (; s->n > 0; --s->n, s->x += s->x_step) {
    int32_t *a = s->acc;
    a[0] = q[0];
    a[1] = q[1];
    a[2] = q[2];
    a[3] = q[3];
    dw_3x3_group(s->x, s->c, s->row, s->w, s->off2, a);
    s->acc = (int32_t *)(void *)((int8_t *)s->acc + s->acc_step);
  }
}
#endif

/* The in-bounds taps [lo, hi) of a window starting at input position `origin`. */
static inline void dw_taps(int32_t origin, int32_t dilation, int32_t k, int32_t size,
                           int32_t *lo, int32_t *hi) {
  if (dilation == 1) { /* no division */
    const int32_t l = origin < 0 ? -origin : 0;
    int32_t h = size - origin < k ? size - origin : k;
    *lo = l;
    *hi = h < l ? l : h;
    return;
  }
  mp_tap_range(origin, dilation, k, size, lo, hi);
}

/* One output row at a time, group of four channels outermost, so a group's weights and
 * biases (one sequential run of flash, kh*kw*4 + 16 bytes) stay in the flash accelerator's
 * data cache across the row's pixels instead of being read again for every pixel. The row's
 * accumulators (out_w * channels) go to the scratch buffer, then each pixel's are requantized
 * together; the requantization table follows them. */
/* The band: the three input rows under output row oy, each widened to band_w pixels so that
 * every output column's 3x3 window lies inside it; positions outside the input hold the
 * input zero point (-input_offset), which the kernel widens to 0, so they add nothing, as
 * TFLM's skipped taps. Then every pixel of the row takes the unrolled 3x3 path. */
static void dw_fill_band(const mp_conv_job_t *j, const int8_t *in_b, int32_t iy0,
                         int8_t *band, int32_t band_w) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t c = d->in_c, pl = p->pad_left;
  const int8_t pad = (int8_t)(-p->input_offset);
  /* Input columns [ix_lo, ix_hi) land at band columns [ix_lo + pl, ix_hi + pl). */
  const int32_t ix_lo = pl > 0 ? 0 : -pl;
  const int32_t ix_hi = d->in_w < band_w - pl ? d->in_w : band_w - pl;
  for (int32_t r = 0; r < 3; ++r, band += band_w * c) {
    const int32_t iy = iy0 + r;
    if (iy < 0 || iy >= d->in_h || ix_hi <= ix_lo) {
      mp_fill_bytes(band, pad, band_w * c);
      continue;
    }
    mp_fill_bytes(band, pad, (ix_lo + pl) * c);
    mp_copy_bytes(band + (ix_lo + pl) * c, in_b + (iy * d->in_w + ix_lo) * c,
                  (ix_hi - ix_lo) * c);
    mp_fill_bytes(band + (ix_hi + pl) * c, pad, (band_w - ix_hi - pl) * c);
  }
}

static void dw_dsp_m1(const mp_conv_job_t *j, const uint8_t *blocks, int32_t *acc,
                      int8_t *band) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t kh = p->kernel_h, kw = p->kernel_w, c_all = d->in_c;
  const int32_t groups = c_all / 4, taps = kh * kw;
  const int32_t blk_bytes = taps * 4 + 16;
  const int32_t row = d->in_w * c_all;
  const int32_t tap_bytes = (int32_t)p->row_bytes;
  const int32_t off = p->input_offset;
  const uint32_t off2 = mp_pack16(off, off);
  const int32_t x_col = p->dilation_w * c_all, x_row = p->dilation_h * row;
  mp_requant_t rq;
  mp_requant_init(&rq, j->mult, j->shift, c_all, p->output_offset, p->act_min, p->act_max,
                  acc + d->out_w * c_all, j->bias, taps);
  const int unrolled = kh == 3 && kw == 3 && p->dilation_h == 1 && p->dilation_w == 1;
  /* The output columns whose 3-wide window lies inside the input: ix0 = ox * stride -
   * pad_left >= 0 and ix0 + 3 <= in_w. */
  const int32_t sw = p->stride_w, pl = p->pad_left;
  int32_t ox_lo = (pl + sw - 1) / sw;
  int32_t ox_hi = d->in_w - 3 + pl >= 0 ? (d->in_w - 3 + pl) / sw + 1 : 0;
  const int32_t band_w = (d->out_w - 1) * sw + 3;
  if (!unrolled) band = 0;
  if (band != 0) { /* every column reads the band */
    ox_lo = 0;
    ox_hi = d->out_w;
  }
  for (int32_t b = 0; b < d->batches; ++b) {
    const int8_t *in_b = j->input + b * d->in_h * row;
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      int32_t ky_lo, ky_hi;
      mp_tap_range(iy0, p->dilation_h, kh, d->in_h, &ky_lo, &ky_hi);
      const int rows_full = ky_lo == 0 && ky_hi == kh;
      const uint8_t *blk = blocks;
      /* pixels [ox_lo, ox_hi) take the 3x3 path */
      const int run3 = unrolled && (rows_full || band != 0);
      /* Where the 3x3 path reads: the input, or the band, whose column 0 is input column
       * -pad_left. */
      const int8_t *src = band != 0 ? band : in_b + iy0 * row - pl * c_all;
      const int32_t src_row = band != 0 ? band_w * c_all : row;
      if (band != 0) dw_fill_band(j, in_b, iy0, band, band_w);
      for (int32_t g = 0; g < groups; ++g, blk += blk_bytes) {
        const int32_t *q = (const int32_t *)(const void *)(blk + taps * 4);
        const int8_t *wg = (const int8_t *)blk;
        if (run3 && ox_hi > ox_lo) { /* the windows' rows and columns are all inside */
          dw_run_t run = {src + ox_lo * sw * c_all + 4 * g, c_all, src_row, wg, off2,
                          acc + ox_lo * c_all + 4 * g, ox_hi - ox_lo, sw * c_all, 4 * c_all};
          dw_3x3_run(&run);
        }
        for (int32_t ox = 0; ox < d->out_w; ++ox) {
          if (run3 && ox >= ox_lo && ox < ox_hi) continue;
          int32_t *a = acc + ox * c_all + 4 * g;
          a[0] = q[0];
          a[1] = q[1];
          a[2] = q[2];
          a[3] = q[3];
          const int32_t ix0 = ox * p->stride_w - p->pad_left;
          int32_t kx_lo, kx_hi;
          dw_taps(ix0, p->dilation_w, kw, d->in_w, &kx_lo, &kx_hi);
          if (ky_hi <= ky_lo || kx_hi <= kx_lo) continue;
          const int8_t *x = in_b + (iy0 + ky_lo * p->dilation_h) * row +
                            (ix0 + kx_lo * p->dilation_w) * c_all + 4 * g;
          int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
          const int8_t *w_row = wg + (ky_lo * kw + kx_lo) * 4;
          for (int32_t ky = ky_lo; ky < ky_hi; ++ky, x += x_row, w_row += 4 * kw) {
            const int8_t *xt = x, *wt = w_row;
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx, xt += x_col, wt += 4)
              dw_tap4(xt, wt, off2, &a0, &a1, &a2, &a3);
          }
          a[0] = a0;
          a[1] = a1;
          a[2] = a2;
          a[3] = a3;
        }
      }
      int8_t *out = j->output + (b * d->out_h + oy) * d->out_w * d->out_c;
      for (int32_t ox = 0; ox < d->out_w; ++ox) {
        int32_t *a = acc + ox * c_all;
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int32_t kx_lo, kx_hi;
        dw_taps(ix0, p->dilation_w, kw, d->in_w, &kx_lo, &kx_hi);
        for (int32_t c = groups * 4; c < c_all; ++c) {
          int32_t sum = j->bias[c];
          if (ky_hi > ky_lo && kx_hi > kx_lo) {
            const int8_t *x = in_b + (iy0 + ky_lo * p->dilation_h) * row +
                              (ix0 + kx_lo * p->dilation_w) * c_all + c;
            for (int32_t ky = ky_lo; ky < ky_hi; ++ky, x += x_row) {
              const int8_t *xt = x;
              for (int32_t kx = kx_lo; kx < kx_hi; ++kx, xt += x_col)
                sum += (int32_t)j->weights[(ky * kw + kx) * tap_bytes + c] * ((int32_t)*xt + off);
            }
          }
          a[c] = sum;
        }
      }
      /* The row's pixels are consecutive in the scratch and in the output: requantize them
       * two at a time. */
      int32_t ox = 0;
      for (; ox + 1 < d->out_w; ox += 2)
        mp_requant_rows2(&rq, acc + ox * c_all, out + ox * d->out_c, c_all);
      if (ox < d->out_w) mp_requant_row(&rq, acc + ox * c_all, out + ox * d->out_c, c_all);
    }
  }
}

/* ---- DSP path, 3x3 planar: two MACs per instruction ------------------------------------
 *
 * The 4-channel path above spends one SMLABB/SMLATT per MAC, because its SIMD lanes hold
 * channels. Here the lanes hold neighbouring columns of one channel: the layer's input is
 * widened once per invocation (offset added, int16) into a planar image, one row of `w2`
 * halfwords per (padded row, channel), padding 0 (the offset-corrected value of the input zero
 * point: adds nothing, as TFLM's skipped taps). A channel's weights become, per kernel row,
 * the pairs {w0, w1} and {w1, w2}, then its bias. For stride 1, four output pixels share three
 * words {x0, x1}, {x2, x3}, {x4, x5} per kernel row: pixel 0 = SMLAD({x0, x1}, {w0, w1}) +
 * SMLABT({x2, x3}, {w1, w2}) (x2 * w2); pixel 1 = SMLATB({x0, x1}, {w0, w1}) (x1 * w0) +
 * SMLAD({x2, x3}, {w1, w2}); pixels 2 and 3 likewise one word on: 12 MACs in 8 multiplies and
 * 3 loads. For stride 2 a pixel takes {x0, x1} and {x2, x3}: SMLAD and SMLABT. The sums are
 * the same integers in another order (int32 wraps, so the order does not matter). Where the
 * requantization takes the short path, each quad's sums are requantized in registers and
 * stored to the output (dw_rq_row_s1 / _s2); otherwise the accumulators are kept channel by
 * channel (`opad` = out_w rounded up to 4 per channel) and requantized channel by channel. Scratch beyond the accumulator row and requantization table
 * (bench_firmware/ops/conv.py depthwise_extra_scratch): the image, ph * channels * w2 * 2
 * bytes, the weights, bias and requantization table words, 40 bytes per channel, and the
 * accumulators, 4 * opad per channel (which the fused rows, dw_rq_row_s1/_s2, leave unused). */
/* The layer seen along rows (lanes hold neighbouring columns) or, transposed, along columns
 * (lanes hold neighbouring rows): whichever computes fewer padded pixels and runs fewer
 * channel loops; a short output width (KWS's 25 x 5 maps) goes transposed. */
typedef struct {
  int32_t rows, cols;         /* input extent along the image rows and along the lanes */
  int32_t out_rows, out_cols; /* output extent likewise */
  int32_t sr, sc, pr, pc;     /* strides and leading padding likewise */
  int32_t in_rs, in_cs;       /* input bytes from one row / column to the next */
  int32_t out_rs, out_cs;     /* output bytes likewise */
  int32_t w_rs, w_cs;         /* weight taps (kernel row, column) to plan tap index */
  int32_t ph, w2, opad;       /* padded rows; halfwords per image row; out_cols rounded to 4 */
} dw_planar_t;

static void dw_planar_view(const mp_conv_job_t *j, int transposed, dw_planar_t *g) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t c = d->in_c;
  if (!transposed) {
    *g = (dw_planar_t){d->in_h, d->in_w, d->out_h, d->out_w, p->stride_h, p->stride_w,
                       p->pad_top, p->pad_left, d->in_w * c, c, d->out_w * c, c, 3, 1,
                       0, 0, 0};
  } else {
    *g = (dw_planar_t){d->in_w, d->in_h, d->out_w, d->out_h, p->stride_w, p->stride_h,
                       p->pad_left, p->pad_top, c, d->in_w * c, c, d->out_w * c, 1, 3,
                       0, 0, 0};
  }
  g->ph = (g->out_rows - 1) * g->sr + 3;
  g->opad = (g->out_cols + 3) & ~3;
  /* The columns the last group of four pixels reads, rounded up to even. */
  g->w2 = g->sc == 1 ? g->opad + 2 : 2 * g->opad + 2;
}

/* Must agree with bench_firmware/ops/conv.py depthwise_planar. */
static int dw_planar_shape(const mp_conv_job_t *j, dw_planar_t *g) {
  const mp_conv_params_t *p = j->p;
  if (p->kernel_h != 3 || p->kernel_w != 3 || p->dilation_h != 1 || p->dilation_w != 1 ||
      p->depth_multiplier != 1 || (j->d.in_c & 3) != 0 || j->d.out_w < 1 || j->d.out_h < 1)
    return 0;
  const int rows_ok = p->stride_w == 1 || p->stride_w == 2;
  const int cols_ok = p->stride_h == 1 || p->stride_h == 2;
  if (!rows_ok && !cols_ok) return 0;
  const int32_t along_rows = j->d.out_h * ((j->d.out_w + 3) & ~3);
  const int32_t along_cols = j->d.out_w * ((j->d.out_h + 3) & ~3);
  dw_planar_view(j, !rows_ok || (cols_ok && along_cols < along_rows), g);
  return 1;
}

static uint32_t dw_planar_bytes(const mp_conv_job_t *j, const dw_planar_t *g) {
  return ((uint32_t)g->ph * (uint32_t)g->w2 * 2u + 40u + 4u * (uint32_t)g->opad) *
         (uint32_t)j->d.in_c;
}

/* Four channels of one input pixel (src) widened into their image rows at dst, dst + w2, ... */
static inline void dw_fill_column(const int8_t *src, int16_t *dst, int32_t w2, uint32_t off2) {
  const uint32_t v = mp_load32(src);
  const uint32_t e = mp_sxtab16(off2, v), o = mp_sxtab16_ror8(off2, v);
  dst[0] = (int16_t)(e & 0xFFFFu);
  dst[w2] = (int16_t)(o & 0xFFFFu);
  dst[2 * w2] = (int16_t)(e >> 16);
  dst[3 * w2] = (int16_t)(o >> 16);
}

/* Two neighbouring input pixels at a time (src, src + step), four channels: each channel's
 * two widened values packed into one word (PKHBT / PKHTB, Armv7-M ARM A7.7.98) and stored
 * to its image row, which starts word-aligned here (dst even). */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
static void dw_fill_pairs(const int8_t *src, int32_t step, int16_t *dst, int32_t w2,
                          uint32_t off2, int32_t pairs) {
  register const int8_t *s_p __asm__("r0") = src;
  register int32_t st __asm__("r1") = step;
  register uint32_t off __asm__("r2") = off2;
  register int16_t *p0 __asm__("r3") = dst;
  register int16_t *p1 __asm__("r4") = dst + w2;
  register int16_t *p2 __asm__("r5") = dst + 2 * w2;
  register int16_t *p3 __asm__("r6") = dst + 3 * w2;
  register int32_t n __asm__("r7") = pairs;
  __asm__ volatile(
      "1:\n\t"
      "ldr    r8, [%[s]]\n\t"
      "ldr    r10, [%[s], %[st]]\n\t"
      "add    %[s], %[s], %[st], lsl #1\n\t"
      "sxtab16 r9, %[off], r8, ror #8\n\t"   /* pixel 0: channels 1, 3 */
      "sxtab16 r8, %[off], r8\n\t"           /* channels 0, 2 */
      "sxtab16 r11, %[off], r10, ror #8\n\t" /* pixel 1 */
      "sxtab16 r10, %[off], r10\n\t"
      "pkhbt  r12, r8, r10, lsl #16\n\t"
      "str    r12, [%[p0]], #4\n\t"
      "pkhtb  r12, r10, r8, asr #16\n\t"
      "str    r12, [%[p2]], #4\n\t"
      "pkhbt  r12, r9, r11, lsl #16\n\t"
      "str    r12, [%[p1]], #4\n\t"
      "pkhtb  r12, r11, r9, asr #16\n\t"
      "str    r12, [%[p3]], #4\n\t"
      "subs   %[n], %[n], #1\n\t"
      "bne    1b\n\t"
      : [s] "+r"(s_p), [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3),
        [n] "+r"(n)
      : [st] "r"(st), [off] "r"(off)
      : "r8", "r9", "r10", "r11", "r12", "cc", "memory");
}
#else
static void dw_fill_pairs(const int8_t *src, int32_t step, int16_t *dst, int32_t w2,
                          uint32_t off2, int32_t pairs) {
  for (int32_t i = 0; i < 2 * pairs; ++i) dw_fill_column(src + i * step, dst + i, w2, off2);
}
#endif

/* The planar image of batch b's input: image row y, channel c, column x at
 * img[(y * channels + c) * w2 + x]. */
static MP_NO_LIBCALLS void dw_planar_fill(const mp_conv_job_t *j, const dw_planar_t *g,
                                          const int8_t *in_b, int16_t *img) {
  const mp_conv_params_t *p = j->p;
  const int32_t c_all = j->d.in_c, w2 = g->w2, pc = g->pc;
  const uint32_t off2 = mp_pack16(p->input_offset, p->input_offset);
  /* Input columns [x_lo, x_hi) land at image columns x + pc, inside [0, w2). */
  const int32_t x_lo = pc > 0 ? 0 : -pc;
  const int32_t x_hi = g->cols < w2 - pc ? g->cols : w2 - pc;
  /* Channel c's padding columns [x_hi + pc, w2) and channel c + 1's [0, x_lo + pc) are
   * neighbours in the image row: one run of `run` halfwords per channel. */
  const int32_t lead = x_lo + pc, trail = x_hi + pc, run = w2 - trail + lead;
  for (int32_t y = 0; y < g->ph; ++y) {
    int16_t *rows = img + y * c_all * w2;
    const int32_t iy = y - g->pr;
    if (iy < 0 || iy >= g->rows || x_hi <= x_lo) {
      mp_fill_bytes((int8_t *)rows, 0, 2 * c_all * w2);
      continue;
    }
    for (int32_t col = 0; col < lead; ++col) rows[col] = 0;
    for (int32_t c = 0; c < c_all; ++c) {
      int16_t *z = rows + c * w2 + trail;
      const int32_t n = c + 1 < c_all ? run : w2 - trail;
      if (n <= 4 && c + 1 < c_all) {
        /* Two words (STR takes any alignment, ARMv7-M ARM A3.2.1): past a short run they
         * land on the next channel's first columns, which the widening below writes. */
        const uint32_t zero = 0;
        memcpy(z, &zero, 4);
        memcpy(z + 2, &zero, 4);
        continue;
      }
      for (int32_t k = 0; k < n; ++k) z[k] = 0;
    }
    const int8_t *src = in_b + iy * g->in_rs + x_lo * g->in_cs;
    for (int32_t c = 0; c < c_all; c += 4) {
      int16_t *dst = rows + c * w2 + x_lo + pc; /* channel c's image row, first column */
      const int8_t *v4 = src + c;
      int32_t n = x_hi - x_lo;
      if ((x_lo + pc) & 1) { /* an odd first column: the pairs below store aligned words */
        dw_fill_column(v4, dst, w2, off2);
        v4 += g->in_cs;
        ++dst;
        --n;
      }
      if (n >= 2) dw_fill_pairs(v4, g->in_cs, dst, w2, off2, n / 2);
      if (n & 1) dw_fill_column(v4 + (n - 1) * g->in_cs, dst + n - 1, w2, off2);
    }
  }
}

/* One output row of one channel, stride 1: n groups of four pixels from image row x (the
 * window's top row at the group's first column), w the channel's 7 words ({w0, w1}, {w1, w2}
 * per kernel row, then the bias), four accumulators per group at acc. */
typedef struct {
  const int16_t *x;      /* +0 */
  int32_t plane_bytes;   /* +4, from one image row to the next */
  const uint32_t *w;     /* +8 */
  int32_t *acc;          /* +12 */
  const int32_t *end;    /* +16, acc + 4 * n */
} dw_quad_t;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
#define DW_QUAD_ROW                        \
  "smlad  r4, r8, r11, r4\n\t"             \
  "smlabt r4, r9, r12, r4\n\t"             \
  "smlatb r5, r8, r11, r5\n\t"             \
  "smlad  r5, r9, r12, r5\n\t"             \
  "smlad  r6, r9, r11, r6\n\t"             \
  "smlabt r6, r10, r12, r6\n\t"            \
  "smlatb r7, r9, r11, r7\n\t"             \
  "smlad  r7, r10, r12, r7\n\t"
__attribute__((naked, noinline)) static void dw_quads(dw_quad_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "push   {r0}\n\t"
      "ldr    r1, [r0, #4]\n\t"  /* plane_bytes */
      "ldr    r2, [r0, #8]\n\t"  /* w */
      "ldr    r3, [r0]\n\t"      /* x */
      "ldr    lr, [r0, #12]\n\t" /* acc */
      "2:\n\t"
      "ldr    r4, [r2, #24]\n\t" /* bias */
      "mov    r5, r4\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r4\n\t"
      "ldmia  r3, {r8, r9, r10}\n\t"
      "ldrd   r11, r12, [r2]\n\t"
      DW_QUAD_ROW
      "add    r0, r3, r1\n\t"
      "ldmia  r0, {r8, r9, r10}\n\t"
      "ldrd   r11, r12, [r2, #8]\n\t"
      DW_QUAD_ROW
      "add    r0, r0, r1\n\t"
      "ldmia  r0, {r8, r9, r10}\n\t"
      "ldrd   r11, r12, [r2, #16]\n\t"
      DW_QUAD_ROW
      "stmia  lr!, {r4, r5, r6, r7}\n\t"
      "add    r3, r3, #8\n\t"
      "ldr    r12, [sp]\n\t"
      "ldr    r0, [r12, #16]\n\t"
      "cmp    lr, r0\n\t"
      "bne    2b\n\t"
      "pop    {r0}\n\t"
      "pop    {r4-r11, pc}\n\t");
}
/* Stride 2: four pixels read five words per kernel row, {x0, x1} ... {x8, x9}: pixel k =
 * SMLAD({x2k, x2k+1}, {w0, w1}) + SMLABT({x2k+2, x2k+3}, {w1, w2}). The row pointer walks
 * down the three image rows and back, and the weight pointer waits on the stack, so the five
 * words, two weights and four accumulators have their registers. */
#define DW_QUAD2_ROW_W(woff)               \
  "ldrd   r2, r0, [r0, #" woff "]\n\t"     \
  "ldmia  r3, {r8, r9, r10, r11, r12}\n\t" \
  "smlad  r4, r8, r2, r4\n\t"              \
  "smlabt r4, r9, r0, r4\n\t"              \
  "smlad  r5, r9, r2, r5\n\t"              \
  "smlabt r5, r10, r0, r5\n\t"             \
  "smlad  r6, r10, r2, r6\n\t"             \
  "smlabt r6, r11, r0, r6\n\t"             \
  "smlad  r7, r11, r2, r7\n\t"             \
  "smlabt r7, r12, r0, r7\n\t"             \
  "ldr    r0, [sp]\n\t"
__attribute__((naked, noinline)) static void dw_quads_s2(dw_quad_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "push   {r0}\n\t"
      "ldr    r1, [r0, #4]\n\t"  /* plane_bytes */
      "ldr    r3, [r0]\n\t"      /* x */
      "ldr    lr, [r0, #12]\n\t" /* acc */
      "2:\n\t"
      "ldr    r0, [sp]\n\t"
      "ldr    r0, [r0, #8]\n\t"  /* w */
      "ldr    r4, [r0, #24]\n\t" /* bias */
      "mov    r5, r4\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r4\n\t"
      "push   {r0}\n\t"         /* the row macro reloads w from here */
      DW_QUAD2_ROW_W("0")
      "add    r3, r3, r1\n\t"
      DW_QUAD2_ROW_W("8")
      "add    r3, r3, r1\n\t"
      DW_QUAD2_ROW_W("16")
      "pop    {r0}\n\t"
      "stmia  lr!, {r4, r5, r6, r7}\n\t"
      "sub    r3, r3, r1, lsl #1\n\t"
      "add    r3, r3, #16\n\t"   /* eight columns on */
      "ldr    r12, [sp]\n\t"
      "ldr    r12, [r12, #16]\n\t"
      "cmp    lr, r12\n\t"
      "bne    2b\n\t"
      "pop    {r0}\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#else
static void dw_quads_s2(dw_quad_t *s) {
  const int32_t plane = s->plane_bytes / 2;
  for (const int16_t *x = s->x; s->acc != s->end; x += 8, s->acc += 4) {
    int32_t a[4];
    for (int32_t k = 0; k < 4; ++k) a[k] = (int32_t)s->w[6];
    for (int32_t r = 0; r < 3; ++r)
      for (int32_t k = 0; k < 4; ++k) {
        const int16_t *xr = x + r * plane + 2 * k;
        a[k] = mp_smlabt(mp_load32(xr + 2), s->w[2 * r + 1],
                         mp_smlad(mp_load32(xr), s->w[2 * r], a[k]));
      }
    for (int32_t k = 0; k < 4; ++k) s->acc[k] = a[k];
  }
}
static void dw_quads(dw_quad_t *s) {
  const int32_t plane = s->plane_bytes / 2;
  for (const int16_t *x = s->x; s->acc != s->end; x += 4, s->acc += 4) {
    int32_t a0 = (int32_t)s->w[6], a1 = a0, a2 = a0, a3 = a0;
    for (int32_t r = 0; r < 3; ++r) {
      const int16_t *xr = x + r * plane;
      const uint32_t x01 = mp_load32(xr), x23 = mp_load32(xr + 2), x45 = mp_load32(xr + 4);
      const uint32_t w01 = s->w[2 * r], w12 = s->w[2 * r + 1];
      a0 = mp_smlabt(x23, w12, mp_smlad(x01, w01, a0));
      a1 = mp_smlad(x23, w12, mp_smlatb(x01, w01, a1));
      a2 = mp_smlabt(x45, w12, mp_smlad(x23, w01, a2));
      a3 = mp_smlad(x45, w12, mp_smlatb(x23, w01, a3));
    }
    s->acc[0] = a0;
    s->acc[1] = a1;
    s->acc[2] = a2;
    s->acc[3] = a3;
  }
}
#endif

/* The fused form of the two above, used when the layer's requantization takes the short path
 * (mp_requant_init set `fast`): every channel of one output row in one call, each quad's four
 * sums requantized in registers (the table words follow the channel's weights and bias: 10
 * words per channel) and stored straight to the output, instead of going to the accumulator
 * rows and back through mp_requant_cols(). The last quad of a channel stores only the `tail`
 * pixels (1..4) that exist. */
typedef struct {
  const int16_t *x;    /* +0, channel 0's image row under the window's top, first quad */
  int32_t plane_bytes; /* +4 */
  const uint32_t *w;   /* +8, channel 0's 10 words */
  int8_t *out;         /* +12, channel 0's output at pixel 0 */
  int32_t out_step;    /* +16, output bytes from one pixel to the next */
  int32_t quad_bytes;  /* +20, image bytes the channel's quads advance over, in all */
  int32_t tail;        /* +24, pixels of the last quad that exist, 1..4 */
  int32_t channels;    /* +28 */
  int32_t row_bytes;   /* +32, image bytes from one channel's row to the next */
} dw_rq_row_t;

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
#define DW_RQ(a) MP_RQ_INPLACE_ASM(a)
#define DW_RQ_QUAD(wreg)                   \
  "ldr    r8, [" wreg ", #28]\n\t"         \
  "ldrd   r9, r10, [" wreg ", #32]\n\t"    \
  DW_RQ("r4") DW_RQ("r5") DW_RQ("r6") DW_RQ("r7")
/* Stride 1: r2 holds the channel's words. */
#if defined(MP_CORTEX_M7)
/* The Cortex-M7 form: the same multiplies, each kernel row's in an order that frees its image
 * and weight registers early, so that the next row's single LDRs issue beside the MACs (one
 * load and one MAC a cycle, a load's result usable two cycles on), and the four sums
 * requantized two at a time (r11 and r12 the two chains' scratch): 45 cycles a quad in the
 * model's dual-issue scheduler (timing/m7.py), against 62 for the LDM form below. */
#define DW_ROW_M7(NEXT_ROW)                \
  "smlad  r4, r8, r11, r4\n\t"            \
  "smlatb r5, r8, r11, r5\n\t"            \
  NEXT_ROW                                 \
  "smlatb r7, r9, r11, r7\n\t"            \
  "smlabt r4, r9, r12, r4\n\t"            \
  "smlad  r5, r9, r12, r5\n\t"
/* A row's third MAC with the next row's first image word loaded beside it; then the rest of
 * the row with the next row's other operands (W, W4: its weight offsets). */
#define DW_NEXT_ROW_M7                     \
  "add    r0, r0, r1\n\t"                 \
  "smlad  r6, r9, r11, r6\n\t"            \
  "ldr    r8, [r0]\n\t"
#define DW_ROW_TAIL_M7(W, W4)              \
  "ldr    r11, [r2, #" W "]\n\t"          \
  "ldr    r9, [r0, #4]\n\t"               \
  "smlabt r6, r10, r12, r6\n\t"           \
  "smlad  r7, r10, r12, r7\n\t"           \
  "ldr    r10, [r0, #8]\n\t"              \
  "ldr    r12, [r2, #" W4 "]\n\t"
#define DW_RQ2_M7(A, B) MP_RQ2_REGS_ASM(A, B, "r8", "r9", "r10", "r12", "r11")
#define DW_RQ_BODY_S1                      \
  "ldr    r4, [r2, #24]\n\t"              \
  "ldr    r8, [r3]\n\t"                   \
  "mov    r5, r4\n\t"                     \
  "ldr    r11, [r2]\n\t"                  \
  "mov    r6, r4\n\t"                     \
  "ldr    r9, [r3, #4]\n\t"               \
  "mov    r7, r4\n\t"                     \
  "ldr    r12, [r2, #4]\n\t"              \
  "ldr    r10, [r3, #8]\n\t"              \
  "mov    r0, r3\n\t"                     \
  DW_ROW_M7(DW_NEXT_ROW_M7)                \
  DW_ROW_TAIL_M7("8", "12")                 \
  DW_ROW_M7(DW_NEXT_ROW_M7)                \
  DW_ROW_TAIL_M7("16", "20")                \
  DW_ROW_M7("smlad  r6, r9, r11, r6\n\t") \
  "ldr    r8, [r2, #28]\n\t"              \
  "smlabt r6, r10, r12, r6\n\t"           \
  "smlad  r7, r10, r12, r7\n\t"           \
  "ldrd   r9, r10, [r2, #32]\n\t"         \
  "add    r3, r3, #8\n\t"                 \
  DW_RQ2_M7("r4", "r5")                     \
  DW_RQ2_M7("r6", "r7")
#else
#define DW_RQ_BODY_S1                      \
  "ldr    r4, [r2, #24]\n\t"               \
  "mov    r5, r4\n\t"                      \
  "mov    r6, r4\n\t"                      \
  "mov    r7, r4\n\t"                      \
  "ldmia  r3, {r8, r9, r10}\n\t"           \
  "ldrd   r11, r12, [r2]\n\t"              \
  DW_QUAD_ROW                              \
  "add    r0, r3, r1\n\t"                  \
  "ldmia  r0, {r8, r9, r10}\n\t"           \
  "ldrd   r11, r12, [r2, #8]\n\t"          \
  DW_QUAD_ROW                              \
  "add    r0, r0, r1\n\t"                  \
  "ldmia  r0, {r8, r9, r10}\n\t"           \
  "ldrd   r11, r12, [r2, #16]\n\t"         \
  DW_QUAD_ROW                              \
  "add    r3, r3, #8\n\t"                  \
  DW_RQ_QUAD("r2")
#endif
/* Stride 2: the channel's words wait at [sp] (DW_QUAD2_ROW_W reloads r0 from there). */
#if defined(MP_CORTEX_M7)
/* The Cortex-M7 form: lr (the output pointer, pushed for the quad) holds the channel's words,
 * each kernel row's MACs ordered so that its five image words free up early and the next
 * row's single LDRs issue beside them, and the sums requantized in two chains. Entering a row:
 * r8-r12 its five image words, r0 / r2 its weight pairs; the next row's at W, W4. */
#define DW_ROW2_M7(W, W4)                  \
  "smlad  r4, r8, r0, r4\n\t"             \
  "add    r3, r3, r1\n\t"                 \
  "smlabt r4, r9, r2, r4\n\t"             \
  "ldr    r8, [r3]\n\t"                   \
  "smlad  r5, r9, r0, r5\n\t"             \
  "smlabt r5, r10, r2, r5\n\t"            \
  "ldr    r9, [r3, #4]\n\t"               \
  "smlad  r6, r10, r0, r6\n\t"            \
  "smlabt r6, r11, r2, r6\n\t"            \
  "ldr    r10, [r3, #8]\n\t"              \
  "smlad  r7, r11, r0, r7\n\t"            \
  "ldr    r0, [lr, #" W "]\n\t"           \
  "smlabt r7, r12, r2, r7\n\t"            \
  "ldr    r11, [r3, #12]\n\t"             \
  "ldr    r12, [r3, #16]\n\t"             \
  "ldr    r2, [lr, #" W4 "]\n\t"
#define DW_RQ_BODY_S2                      \
  "push   {lr}\n\t"                       \
  "ldr    lr, [sp, #4]\n\t"               \
  "ldr    r4, [lr, #24]\n\t"              \
  "ldr    r8, [r3]\n\t"                   \
  "mov    r5, r4\n\t"                     \
  "ldr    r9, [r3, #4]\n\t"               \
  "mov    r6, r4\n\t"                     \
  "ldr    r10, [r3, #8]\n\t"              \
  "mov    r7, r4\n\t"                     \
  "ldr    r11, [r3, #12]\n\t"             \
  "ldr    r12, [r3, #16]\n\t"             \
  "ldr    r0, [lr]\n\t"                   \
  "ldr    r2, [lr, #4]\n\t"               \
  DW_ROW2_M7("8", "12")                    \
  DW_ROW2_M7("16", "20")                   \
  "smlad  r4, r8, r0, r4\n\t"             \
  "smlabt r4, r9, r2, r4\n\t"             \
  "ldr    r8, [lr, #28]\n\t"              \
  "smlad  r5, r9, r0, r5\n\t"             \
  "smlabt r5, r10, r2, r5\n\t"            \
  "ldr    r9, [lr, #32]\n\t"              \
  "smlad  r6, r10, r0, r6\n\t"            \
  "smlabt r6, r11, r2, r6\n\t"            \
  "ldr    r10, [lr, #36]\n\t"             \
  "smlad  r7, r11, r0, r7\n\t"            \
  "smlabt r7, r12, r2, r7\n\t"            \
  "sub    r3, r3, r1, lsl #1\n\t"         \
  "add    r3, r3, #16\n\t"                \
  DW_RQ2_M7("r4", "r5")                     \
  DW_RQ2_M7("r6", "r7")                     \
  "pop    {lr}\n\t"
#else
#define DW_RQ_BODY_S2                      \
  "ldr    r0, [sp]\n\t"                    \
  "ldr    r4, [r0, #24]\n\t"               \
  "mov    r5, r4\n\t"                      \
  "mov    r6, r4\n\t"                      \
  "mov    r7, r4\n\t"                      \
  DW_QUAD2_ROW_W("0")                      \
  "add    r3, r3, r1\n\t"                  \
  DW_QUAD2_ROW_W("8")                      \
  "add    r3, r3, r1\n\t"                  \
  DW_QUAD2_ROW_W("16")                     \
  "sub    r3, r3, r1, lsl #1\n\t"          \
  "add    r3, r3, #16\n\t"                 \
  DW_RQ_QUAD("r0")
#endif
/* Locals: [sp] the channel's words, +4 the end of its quads in the image, +8 its output at
 * pixel 0, +12 channels left, +16 s, +20 its image row, +24 out_step, +28 tail. */
#define DW_RQ_ASM(BODY)                                              \
  __asm__ volatile(                                                  \
      "push   {r4-r11, lr}\n\t"                                      \
      "sub    sp, sp, #32\n\t"                                       \
      "str    r0, [sp, #16]\n\t"                                     \
      "ldr    r1, [r0, #16]\n\t"                                     \
      "str    r1, [sp, #24]\n\t"                                     \
      "ldr    r1, [r0, #24]\n\t"                                     \
      "str    r1, [sp, #28]\n\t"                                     \
      "ldr    r1, [r0, #28]\n\t"                                     \
      "str    r1, [sp, #12]\n\t"                                     \
      "ldr    r2, [r0, #8]\n\t"                                      \
      "str    r2, [sp]\n\t"                                          \
      "ldr    lr, [r0, #12]\n\t"                                     \
      "str    lr, [sp, #8]\n\t"                                      \
      "ldr    r3, [r0]\n\t"                                          \
      "ldr    r1, [r0, #4]\n\t"                                      \
      "4:\n\t" /* a channel */                                       \
      "str    r3, [sp, #20]\n\t"                                     \
      "ldr    r0, [sp, #16]\n\t"                                     \
      "ldr    r0, [r0, #20]\n\t"                                     \
      "add    r0, r3, r0\n\t"                                        \
      "str    r0, [sp, #4]\n\t"                                      \
      "1:\n\t" /* a quad */                                          \
      BODY                                                           \
      "ldr    r11, [sp, #4]\n\t"                                     \
      "ldr    r0, [sp, #24]\n\t"                                     \
      "cmp    r3, r11\n\t"                                           \
      "beq    7f\n\t"                                                \
      "strb   r4, [lr]\n\t"                                          \
      "strb   r5, [lr, r0]\n\t"                                      \
      "add    lr, lr, r0, lsl #1\n\t"                                \
      "strb   r6, [lr]\n\t"                                          \
      "strb   r7, [lr, r0]\n\t"                                      \
      "add    lr, lr, r0, lsl #1\n\t"                                \
      "b      1b\n\t"                                                \
      "7:\n\t" /* the last quad: its `tail` pixels */                \
      "ldr    r11, [sp, #28]\n\t"                                    \
      "strb   r4, [lr]\n\t"                                          \
      "cmp    r11, #2\n\t"                                           \
      "blt    6f\n\t"                                                \
      "strb   r5, [lr, r0]\n\t"                                      \
      "beq    6f\n\t"                                                \
      "add    lr, lr, r0, lsl #1\n\t"                                \
      "strb   r6, [lr]\n\t"                                          \
      "cmp    r11, #4\n\t"                                           \
      "bne    6f\n\t"                                                \
      "strb   r7, [lr, r0]\n\t"                                      \
      "6:\n\t" /* the next channel */                                \
      "ldr    r3, [sp, #20]\n\t"                                     \
      "ldr    r0, [sp, #16]\n\t"                                     \
      "ldr    r0, [r0, #32]\n\t"                                     \
      "add    r3, r3, r0\n\t"                                        \
      "ldr    r2, [sp]\n\t"                                          \
      "add    r2, r2, #40\n\t"                                       \
      "str    r2, [sp]\n\t"                                          \
      "ldr    lr, [sp, #8]\n\t"                                      \
      "add    lr, lr, #1\n\t"                                        \
      "str    lr, [sp, #8]\n\t"                                      \
      "ldr    r0, [sp, #12]\n\t"                                     \
      "subs   r0, r0, #1\n\t"                                        \
      "str    r0, [sp, #12]\n\t"                                     \
      "bne    4b\n\t"                                                \
      "add    sp, sp, #32\n\t"                                       \
      "pop    {r4-r11, pc}\n\t")
__attribute__((naked, noinline)) static void dw_rq_row_s1(const dw_rq_row_t *s) {
  (void)s;
  DW_RQ_ASM(DW_RQ_BODY_S1);
}
__attribute__((naked, noinline)) static void dw_rq_row_s2(const dw_rq_row_t *s) {
  (void)s;
  DW_RQ_ASM(DW_RQ_BODY_S2);
}
/* Stride 1 where the row is six pixels wide (VWW's 6x6 maps), which the quads would run as
 * eight, two of them wasted: per kernel row four image words {x0, x1} .. {x6, x7} and the two
 * weight pairs give the six pixels their twelve MACs (pixel 2k: SMLAD with {x2k, x2k+1},
 * SMLABT with {x2k+2, x2k+3}; pixel 2k + 1: SMLATB, SMLAD), each image word loaded beside the
 * MACs once the one before it is done with; the six sums requantized in place in two chains
 * (r10, r11) and stored. Scheduled for the Cortex-M7's dual issue; the Cortex-M4 runs the same
 * instructions one at a time. A channel takes 70 cycles in the Cortex-M7 model's scheduler
 * (timing/m7.py) and 117 in the Cortex-M4 model (timing/m4.py), against about 125 and 188 for
 * its two quads and their channel loop. Locals: [sp] the channel's image row, +4 its output at
 * pixel 0, +12 row_bytes, +16 out_step, +20 plane_bytes; r3 counts the channels down. */
#define DW_HEX_ROW(NEXT)                   \
  "smlad  r4, r10, r12, r4\n\t"            \
  "smlatb r5, r10, r12, r5\n\t"            \
  "ldr    r10, [r0, #8]\n\t"               \
  "smlabt r4, r11, lr, r4\n\t"             \
  "smlad  r5, r11, lr, r5\n\t"             \
  "smlad  r6, r11, r12, r6\n\t"            \
  "smlatb r7, r11, r12, r7\n\t"            \
  "ldr    r11, [r0, #12]\n\t"              \
  "smlabt r6, r10, lr, r6\n\t"             \
  "smlad  r7, r10, lr, r7\n\t"             \
  "smlad  r8, r10, r12, r8\n\t"            \
  NEXT
/* The row's last MACs with the next row's words (W, W4: its weight offsets) loaded beside. */
#define DW_HEX_NEXT(W, W4)                 \
  "add    r0, r0, r1\n\t"                  \
  "smlatb r9, r10, r12, r9\n\t"            \
  "ldr    r10, [r0]\n\t"                   \
  "smlabt r8, r11, lr, r8\n\t"             \
  "ldr    r12, [r2, #" W "]\n\t"           \
  "smlad  r9, r11, lr, r9\n\t"             \
  "ldr    r11, [r0, #4]\n\t"               \
  "ldr    lr, [r2, #" W4 "]\n\t"
/* The last row's with the table words: multiplier r12, shift r1, rounding constant lr. */
#define DW_HEX_LAST                        \
  "smlatb r9, r10, r12, r9\n\t"            \
  "ldr    r12, [r2, #28]\n\t"              \
  "smlabt r8, r11, lr, r8\n\t"             \
  "ldr    r1, [r2, #32]\n\t"               \
  "smlad  r9, r11, lr, r9\n\t"             \
  "ldr    lr, [r2, #36]\n\t"
#define DW_HEX_RQ_START(A, B)              \
  "lsl    r10, " A ", #1\n\t"              \
  "lsl    r11, " B ", #1\n\t"              \
  "smmlar r10, r10, r12, lr\n\t"           \
  "smmlar r11, r11, r12, lr\n\t"           \
  "add    " A ", r10, " A ", asr #31\n\t"  \
  "add    " B ", r11, " B ", asr #31\n\t"
__attribute__((naked, noinline)) static void dw_rq_hex_s1(const dw_rq_row_t *s) {
  (void)s;
  __asm__ volatile(
      "push   {r4-r11, lr}\n\t"
      "sub    sp, sp, #24\n\t"
      "ldr    r1, [r0, #12]\n\t"
      "str    r1, [sp, #4]\n\t"
      "ldr    r1, [r0, #32]\n\t"
      "str    r1, [sp, #12]\n\t"
      "ldr    r1, [r0, #16]\n\t"
      "str    r1, [sp, #16]\n\t"
      "ldr    r1, [r0, #4]\n\t"
      "str    r1, [sp, #20]\n\t"
      "ldr    r3, [r0, #28]\n\t"
      "ldr    r2, [r0, #8]\n\t"
      "ldr    r0, [r0]\n\t"
      "str    r0, [sp]\n\t"
      "4:\n\t" /* a channel: r0 its image row, r2 its words */
      "ldr    r1, [sp, #20]\n\t"
      "ldr    r4, [r2, #24]\n\t"
      "ldr    r10, [r0]\n\t"
      "ldr    r12, [r2]\n\t"
      "ldr    r11, [r0, #4]\n\t"
      "ldr    lr, [r2, #4]\n\t"
      "mov    r5, r4\n\t"
      "mov    r6, r4\n\t"
      "mov    r7, r4\n\t"
      "mov    r8, r4\n\t"
      "mov    r9, r4\n\t"
      DW_HEX_ROW(DW_HEX_NEXT("8", "12"))
      DW_HEX_ROW(DW_HEX_NEXT("16", "20"))
      DW_HEX_ROW(DW_HEX_LAST)
      DW_HEX_RQ_START("r4", "r5")
      "lsl    r10, r6, #1\n\t"
      "lsl    r11, r7, #1\n\t"
      "smmlar r10, r10, r12, lr\n\t"
      "asr    r4, r4, r1\n\t"
      "smmlar r11, r11, r12, lr\n\t"
      "asr    r5, r5, r1\n\t"
      "ssat   r4, #8, r4\n\t"
      "add    r6, r10, r6, asr #31\n\t"
      "ssat   r5, #8, r5\n\t"
      "add    r7, r11, r7, asr #31\n\t"
      "lsl    r10, r8, #1\n\t"
      "asr    r6, r6, r1\n\t"
      "lsl    r11, r9, #1\n\t"
      "asr    r7, r7, r1\n\t"
      "smmlar r10, r10, r12, lr\n\t"
      "ssat   r6, #8, r6\n\t"
      "smmlar r11, r11, r12, lr\n\t"
      "ssat   r7, #8, r7\n\t"
      "add    r8, r10, r8, asr #31\n\t"
      "ldr    r0, [sp, #4]\n\t"
      "add    r9, r11, r9, asr #31\n\t"
      "asr    r8, r8, r1\n\t"
      "asr    r9, r9, r1\n\t"
      "ldr    r1, [sp, #16]\n\t"
      "ssat   r8, #8, r8\n\t"
      "strb   r4, [r0]\n\t"
      "ssat   r9, #8, r9\n\t"
      "strb   r5, [r0, r1]\n\t"
      "add    r10, r0, r1, lsl #1\n\t"
      "strb   r6, [r10]\n\t"
      "add    r0, r0, #1\n\t"
      "strb   r7, [r10, r1]\n\t"
      "add    r10, r10, r1, lsl #1\n\t"
      "strb   r8, [r10]\n\t"
      "str    r0, [sp, #4]\n\t"
      "strb   r9, [r10, r1]\n\t"
      "ldr    r0, [sp]\n\t"
      "ldr    r1, [sp, #12]\n\t"
      "add    r2, r2, #40\n\t"
      "subs   r3, r3, #1\n\t"
      "add    r0, r0, r1\n\t"
      "str    r0, [sp]\n\t"
      "bne    4b\n\t"
      "add    sp, sp, #24\n\t"
      "pop    {r4-r11, pc}\n\t");
}
#else
/* The host build: the quads into `acc` (4 * quads words), then the table arithmetic. */
static void dw_rq_row(const dw_rq_row_t *s, int stride2, int32_t *acc) {
  const int32_t quads = s->quad_bytes / (stride2 ? 16 : 8);
  const int32_t n_pix = 4 * (quads - 1) + s->tail;
  for (int32_t c = 0; c < s->channels; ++c) {
    const uint32_t *w = s->w + 10 * c;
    dw_quad_t q = {(const int16_t *)(const void *)((const int8_t *)s->x + c * s->row_bytes),
                   s->plane_bytes, w, acc, acc + 4 * quads};
    if (stride2)
      dw_quads_s2(&q);
    else
      dw_quads(&q);
    for (int32_t x = 0; x < n_pix; ++x)
      s->out[x * s->out_step + c] = mp_requant_table_out((const int32_t *)(const void *)(w + 7),
                                                         acc[x]);
  }
}
#endif

static void dw_planar(const mp_conv_job_t *j, const dw_planar_t *g, int32_t *table,
                      int16_t *img) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t c_all = d->in_c, w2 = g->w2, tap_bytes = (int32_t)p->row_bytes;
  const int32_t plane = c_all * w2; /* halfwords from one image row to the next */
  uint32_t *wp = (uint32_t *)(void *)(img + g->ph * plane); /* per channel: 10 words */
  int32_t *acc = (int32_t *)(void *)(wp + 10 * c_all);      /* [channel][opad] */
  mp_requant_t rq;
  mp_requant_init(&rq, j->mult, j->shift, c_all, p->output_offset, p->act_min, p->act_max,
                  table, j->bias, 9);
  /* Tap by tap, each tap's channels in order: the plan's weights are read as one sequential
   * run per tap (channel by channel, the nine taps' flash lines would take turns in the flash
   * accelerator's data cache, eight lines on the Cortex-M4 boards, missing every time). In
   * halfwords, a channel's words are {w0, w1, w1, w2} per kernel row of the view. */
  int16_t *wh = (int16_t *)(void *)wp;
  for (int32_t r = 0; r < 3; ++r)
    for (int32_t kx = 0; kx < 3; ++kx) {
      const int8_t *w = j->weights + (r * g->w_rs + kx * g->w_cs) * tap_bytes;
      int16_t *h = wh + 4 * r + (kx == 0 ? 0 : kx == 1 ? 1 : 3);
      for (int32_t c = 0; c < c_all; ++c, h += 20) {
        h[0] = w[c];
        if (kx == 1) h[1] = w[c];
      }
    }
  for (int32_t c = 0; c < c_all; ++c) {
    uint32_t *wc = wp + 10 * c;
    wc[6] = (uint32_t)j->bias[c];
    if (rq.fast)
      for (int32_t k = 0; k < MP_REQUANT_TABLE_WORDS; ++k)
        wc[7 + k] = (uint32_t)table[MP_REQUANT_TABLE_WORDS * c + k];
  }
  const int32_t quads = g->opad / 4;
  for (int32_t b = 0; b < d->batches; ++b) {
    dw_planar_fill(j, g, j->input + b * d->in_h * d->in_w * c_all, img);
    int8_t *out_b = j->output + b * d->out_h * d->out_w * d->out_c;
    for (int32_t oy = 0; oy < g->out_rows; ++oy) {
      const int16_t *top = img + oy * g->sr * plane;
      if (rq.fast) {
        const dw_rq_row_t s = {top, 2 * plane, wp, out_b + oy * g->out_rs, g->out_cs,
                               quads * (g->sc == 1 ? 8 : 16), g->out_cols - 4 * (quads - 1),
                               c_all, 2 * w2};
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
        if (g->sc == 1 && g->out_cols == 6)
          dw_rq_hex_s1(&s);
        else
        if (g->sc == 1)
          dw_rq_row_s1(&s);
        else
          dw_rq_row_s2(&s);
#else
        dw_rq_row(&s, g->sc != 1, acc);
#endif
        continue;
      }
      for (int32_t c = 0; c < c_all; ++c) {
        const uint32_t *w = wp + 10 * c;
        const int16_t *r0 = top + c * w2;
        int32_t *a = acc + c * g->opad;
        dw_quad_t q = {r0, 2 * plane, w, a, a + g->opad};
        if (g->sc == 1)
          dw_quads(&q);
        else
          dw_quads_s2(&q);
      }
      mp_requant_cols(&rq, acc, g->opad, out_b + oy * g->out_rs, c_all, g->out_cols,
                      g->out_cs);
    }
  }
}

mp_status_t mp_op_depthwise_conv2d(const mp_op_ctx_t *ctx) {
  mp_conv_job_t j;
  if (mp_conv_job_init(ctx, &j) != MP_OK) return MP_ERR_OP;
  const mp_conv_params_t *p = j.p;
  if (p->depth_multiplier == 0 || j.d.out_c != j.d.in_c * (int32_t)p->depth_multiplier ||
      p->row_bytes < (uint32_t)j.d.out_c || p->weight_bits != 8u)
    return MP_ERR_OP;
  const uint32_t taps = (uint32_t)p->kernel_h * p->kernel_w;
  const uint32_t blocks_bytes = (uint32_t)(j.d.in_c / 4) * (taps * 4u + 16u);
  /* The DSP block is part of the plan, which the runtime checked as a whole at load; a
   * plan without one (depth multiplier > 1, fewer than 4 channels) runs the reference loops. */
  int32_t *acc = (int32_t *)mp_scratch(ctx, p->scratch_off, p->scratch_bytes);
  /* Must agree with bench_firmware/ops/conv.py depthwise_scratch_bytes() and
   * depthwise_extra_scratch(). */
  const uint32_t needed =
      (4u * (uint32_t)j.d.out_w + 4u * MP_REQUANT_TABLE_WORDS) * (uint32_t)j.d.in_c;
  const uint32_t band_bytes =
      3u * ((uint32_t)(j.d.out_w - 1) * p->stride_w + 3u) * (uint32_t)j.d.in_c;
  dw_planar_t g;
  if (ctx->path == MP_KERNELS_DSP && acc != 0 && p->scratch_bytes >= needed &&
      dw_planar_shape(&j, &g) && p->scratch_bytes - needed >= dw_planar_bytes(&j, &g)) {
    dw_planar(&j, &g, acc + j.d.out_w * j.d.in_c, (int16_t *)(void *)((int8_t *)acc + needed));
    return MP_OK;
  }
  if (ctx->path == MP_KERNELS_DSP && p->depth_multiplier == 1 && p->dsp_off != 0 && acc != 0 &&
      p->scratch_bytes >= needed && (p->dsp_off & 3u) == 0 &&
      p->dsp_off + (uint64_t)blocks_bytes <= ctx->plan_bytes)
    dw_dsp_m1(&j, ctx->plan + p->dsp_off, acc,
              p->scratch_bytes - needed >= band_bytes ? (int8_t *)acc + needed : 0);
  else
    dw_ref(&j);
  return MP_OK;
}
