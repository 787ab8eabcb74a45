/* CONV_2D, int8 with per-channel quantization: TFLM reference_integer_ops::ConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/conv.h).
 *
 * Weights (bench_firmware/ops/conv.py): [out_c][row_bytes], each row the output channel's
 * OHWI filter (kh * kw * in_c bytes) padded to a word. Taps outside the input are skipped,
 * as in TFLM: the padded input would be -input_offset, whose offset-corrected value is 0.
 *
 * The DSP path needs no im2col buffer: in NHWC one input pixel's channels are contiguous and
 * so are one tap's weights; with dilation_w == 1 a whole kernel row's in-bounds taps are one
 * contiguous span in both. Each span is a dot product done four channels at a time with
 * SXTAB16 (input + offset) / SXTB16 (weights) and SMLAD, for two output channels and, where
 * two neighbouring output pixels see the same taps, two pixels at once (4 accumulators per
 * 2 input + 2 weight loads). Both paths requantize through mp_requantize(), so their bytes
 * are identical. */
#include <stdint.h>

#include "mp_acle.h"
#include "mp_fixedpoint.h"
#include "mp_conv_job.h"
#include "mp_kernels.h"


static inline int8_t conv_out(const mp_conv_params_t *p, int32_t acc, int32_t mult, int32_t shift) {
  return mp_requantize_output(acc, mult, shift, p->output_offset, p->act_min, p->act_max);
}

static void conv_ref(const mp_conv_job_t *j) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t kh = p->kernel_h, kw = p->kernel_w;
  for (int32_t b = 0; b < d->batches; ++b) {
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      for (int32_t ox = 0; ox < d->out_w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int8_t *out = j->output + ((b * d->out_h + oy) * d->out_w + ox) * d->out_c;
        for (int32_t oc = 0; oc < d->out_c; ++oc) {
          const int8_t *row = j->weights + oc * (int32_t)p->row_bytes;
          int32_t acc = 0;
          for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t iy = iy0 + ky * p->dilation_h;
            for (int32_t kx = 0; kx < kw; ++kx) {
              const int32_t ix = ix0 + kx * p->dilation_w;
              if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) continue;
              const int8_t *x = j->input + ((b * d->in_h + iy) * d->in_w + ix) * d->in_c;
              const int8_t *w = row + (ky * kw + kx) * d->in_c;
              for (int32_t ic = 0; ic < d->in_c; ++ic)
                acc += (int32_t)w[ic] * ((int32_t)x[ic] + p->input_offset);
            }
          }
          acc += j->bias[oc];
          out[oc] = conv_out(p, acc, j->mult[oc], j->shift[oc]);
        }
      }
    }
  }
}

/* acc[0], acc[1] += sum_i (x[i] + offset) * w0[i], w1[i]: one pixel, two channels. */
static inline void dot_p1_c2(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n,
                             uint32_t off2, int32_t off, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1];
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32_t xv = mp_load32(x + i);
    const uint32_t xe = mp_sxtab16(off2, xv), xo = mp_sxtab16_ror8(off2, xv);
    const uint32_t v0 = mp_load32(w0 + i), v1 = mp_load32(w1 + i);
    a0 = mp_smlad(xe, mp_sxtb16(v0), a0);
    a0 = mp_smlad(xo, mp_sxtb16_ror8(v0), a0);
    a1 = mp_smlad(xe, mp_sxtb16(v1), a1);
    a1 = mp_smlad(xo, mp_sxtb16_ror8(v1), a1);
  }
  for (; i < n; ++i) {
    const int32_t xi = (int32_t)x[i] + off;
    a0 += (int32_t)w0[i] * xi;
    a1 += (int32_t)w1[i] * xi;
  }
  acc[0] = a0;
  acc[1] = a1;
}

/* Two pixels (x, y), two channels: acc = {x.w0, x.w1, y.w0, y.w1}. */
static inline void dot_p2_c2(const int8_t *x, const int8_t *y, const int8_t *w0,
                             const int8_t *w1, int32_t n, uint32_t off2, int32_t off,
                             int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32_t xv = mp_load32(x + i), yv = mp_load32(y + i);
    const uint32_t v0 = mp_load32(w0 + i), v1 = mp_load32(w1 + i);
    const uint32_t v0e = mp_sxtb16(v0), v0o = mp_sxtb16_ror8(v0);
    const uint32_t v1e = mp_sxtb16(v1), v1o = mp_sxtb16_ror8(v1);
    const uint32_t xe = mp_sxtab16(off2, xv), xo = mp_sxtab16_ror8(off2, xv);
    a0 = mp_smlad(xe, v0e, a0);
    a0 = mp_smlad(xo, v0o, a0);
    a1 = mp_smlad(xe, v1e, a1);
    a1 = mp_smlad(xo, v1o, a1);
    const uint32_t ye = mp_sxtab16(off2, yv), yo = mp_sxtab16_ror8(off2, yv);
    a2 = mp_smlad(ye, v0e, a2);
    a2 = mp_smlad(yo, v0o, a2);
    a3 = mp_smlad(ye, v1e, a3);
    a3 = mp_smlad(yo, v1o, a3);
  }
  for (; i < n; ++i) {
    const int32_t xi = (int32_t)x[i] + off, yi = (int32_t)y[i] + off;
    a0 += (int32_t)w0[i] * xi;
    a1 += (int32_t)w1[i] * xi;
    a2 += (int32_t)w0[i] * yi;
    a3 += (int32_t)w1[i] * yi;
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* One or two pixels, one channel (the last one of an odd count): acc = {x.w, y.w}. */
static inline void dot_c1(const int8_t *x, const int8_t *y, const int8_t *w, int32_t n,
                          uint32_t off2, int32_t off, int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1];
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint32_t v = mp_load32(w + i);
    const uint32_t ve = mp_sxtb16(v), vo = mp_sxtb16_ror8(v);
    const uint32_t xv = mp_load32(x + i);
    a0 = mp_smlad(mp_sxtab16(off2, xv), ve, a0);
    a0 = mp_smlad(mp_sxtab16_ror8(off2, xv), vo, a0);
    if (y) {
      const uint32_t yv = mp_load32(y + i);
      a1 = mp_smlad(mp_sxtab16(off2, yv), ve, a1);
      a1 = mp_smlad(mp_sxtab16_ror8(off2, yv), vo, a1);
    }
  }
  for (; i < n; ++i) {
    a0 += (int32_t)w[i] * ((int32_t)x[i] + off);
    if (y) a1 += (int32_t)w[i] * ((int32_t)y[i] + off);
  }
  acc[0] = a0;
  acc[1] = a1;
}

/* The in-bounds part of one output pixel's (or pixel pair's) window, as spans. */
typedef struct {
  int32_t ky_lo, ky_hi, kx_lo, kx_hi;
  int32_t n_spans, span;  /* spans per kernel row and bytes per span */
  int32_t x_step;         /* input bytes between spans */
} conv_window_t;

/* One output pixel, or two (ox, ox + 1) when `pair` (same taps in bounds for both). */
static void conv_dsp_pixels(const mp_conv_job_t *j, int32_t b, int32_t oy, int32_t ox, int pair,
                            const conv_window_t *win) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t in_c = d->in_c, kw = p->kernel_w;
  const int32_t off = p->input_offset;
  const uint32_t off2 = mp_pack16(off, off);
  const int32_t iy0 = oy * p->stride_h - p->pad_top;
  const int32_t ix0 = ox * p->stride_w - p->pad_left;
  const int32_t pair_step = p->stride_w * in_c; /* the second pixel's input, further right */
  const int32_t row_bytes = (int32_t)p->row_bytes;
  int8_t *out0 = j->output + ((b * d->out_h + oy) * d->out_w + ox) * d->out_c;
  int8_t *out1 = out0 + d->out_c;
  const int8_t *in_b = j->input + b * d->in_h * d->in_w * in_c;
  /* No tap in bounds horizontally: only the bias (and no pointer into the void). */
  const int32_t ky_hi = win->n_spans > 0 ? win->ky_hi : win->ky_lo;

  int32_t oc = 0;
  for (; oc + 2 <= d->out_c; oc += 2) {
    const int8_t *row0 = j->weights + oc * row_bytes;
    int32_t acc[4] = {j->bias[oc], j->bias[oc + 1], j->bias[oc], j->bias[oc + 1]};
    for (int32_t ky = win->ky_lo; ky < ky_hi; ++ky) {
      const int8_t *x = in_b + ((iy0 + ky * p->dilation_h) * d->in_w +
                                ix0 + win->kx_lo * p->dilation_w) * in_c;
      const int8_t *w = row0 + (ky * kw + win->kx_lo) * in_c;
      for (int32_t s = 0; s < win->n_spans; ++s) {
        const int8_t *xs = x + s * win->x_step, *ws = w + s * in_c;
        if (pair)
          dot_p2_c2(xs, xs + pair_step, ws, ws + row_bytes, win->span, off2, off, acc);
        else
          dot_p1_c2(xs, ws, ws + row_bytes, win->span, off2, off, acc);
      }
    }
    out0[oc] = conv_out(p, acc[0], j->mult[oc], j->shift[oc]);
    out0[oc + 1] = conv_out(p, acc[1], j->mult[oc + 1], j->shift[oc + 1]);
    if (pair) {
      out1[oc] = conv_out(p, acc[2], j->mult[oc], j->shift[oc]);
      out1[oc + 1] = conv_out(p, acc[3], j->mult[oc + 1], j->shift[oc + 1]);
    }
  }
  if (oc < d->out_c) {
    const int8_t *row = j->weights + oc * row_bytes;
    int32_t acc[2] = {j->bias[oc], j->bias[oc]};
    for (int32_t ky = win->ky_lo; ky < ky_hi; ++ky) {
      const int8_t *x = in_b + ((iy0 + ky * p->dilation_h) * d->in_w +
                                ix0 + win->kx_lo * p->dilation_w) * in_c;
      const int8_t *w = row + (ky * kw + win->kx_lo) * in_c;
      for (int32_t s = 0; s < win->n_spans; ++s) {
        const int8_t *xs = x + s * win->x_step;
        dot_c1(xs, pair ? xs + pair_step : 0, w + s * in_c, win->span, off2, off, acc);
      }
    }
    out0[oc] = conv_out(p, acc[0], j->mult[oc], j->shift[oc]);
    if (pair) out1[oc] = conv_out(p, acc[1], j->mult[oc], j->shift[oc]);
  }
}

static void conv_dsp(const mp_conv_job_t *j) {
  const mp_conv_params_t *p = j->p;
  const mp_conv_dims_t *d = &j->d;
  const int32_t in_c = d->in_c;
  for (int32_t b = 0; b < d->batches; ++b) {
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      conv_window_t win;
      mp_tap_range(oy * p->stride_h - p->pad_top, p->dilation_h, p->kernel_h, d->in_h,
                     &win.ky_lo, &win.ky_hi);
      int32_t ox = 0;
      while (ox < d->out_w) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        mp_tap_range(ix0, p->dilation_w, p->kernel_w, d->in_w, &win.kx_lo, &win.kx_hi);
        const int32_t taps = win.kx_hi - win.kx_lo;
        if (p->dilation_w == 1) {
          /* Neighbouring taps are neighbouring pixels: one span per kernel row. */
          win.n_spans = taps > 0 ? 1 : 0;
          win.span = taps * in_c;
          win.x_step = 0;
        } else {
          win.n_spans = taps;
          win.span = in_c;
          win.x_step = p->dilation_w * in_c;
        }
        int pair = 0;
        if (ox + 1 < d->out_w) {
          int32_t lo, hi;
          mp_tap_range(ix0 + p->stride_w, p->dilation_w, p->kernel_w, d->in_w, &lo, &hi);
          pair = lo == win.kx_lo && hi == win.kx_hi;
        }
        conv_dsp_pixels(j, b, oy, ox, pair, &win);
        ox += pair ? 2 : 1;
      }
    }
  }
}

mp_status_t mp_op_conv2d(const mp_op_ctx_t *ctx) {
  mp_conv_job_t j;
  if (mp_conv_job_init(ctx, &j) != MP_OK) return MP_ERR_OP;
  const mp_conv_params_t *p = j.p;
  if (p->row_bytes < (uint32_t)p->kernel_h * p->kernel_w * (uint32_t)j.d.in_c) return MP_ERR_OP;
  if (ctx->path == MP_KERNELS_DSP)
    conv_dsp(&j);
  else
    conv_ref(&j);
  return MP_OK;
}
