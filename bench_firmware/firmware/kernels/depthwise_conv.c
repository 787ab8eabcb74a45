/* DEPTHWISE_CONV_2D, int8 with per-channel quantization: TFLM
 * reference_integer_ops::DepthwiseConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h).
 *
 * Weights (bench_firmware/ops/conv.py): [kh][kw][row_bytes], each tap's out_c weights padded
 * to a word; output channel oc = ic * depth_multiplier + m reads input channel ic. Taps
 * outside the input are skipped, as in TFLM.
 *
 * DSP path, depth_multiplier == 1: SIMD over channels, four at a time. One word of input and
 * one of weights per tap give four int8 lanes each; SXTAB16 (input + offset) / SXTB16
 * (weights), plain and with ROR #8, split them into the (0, 2) and (1, 3) halfword pairs, and
 * SMLABB / SMLATT accumulate each lane into its channel. Other depth multipliers use the
 * reference loops. Both paths requantize through mp_requantize(). */
#include <stdint.h>

#include "mp_acle.h"
#include "mp_fixedpoint.h"
#include "mp_conv_job.h"
#include "mp_kernels.h"


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

/* depth_multiplier == 1: output channel c reads input channel c. */
static void dw_dsp_m1(const mp_conv_job_t *j) {
  const mp_conv_params_t *p = j->p;
  const int32_t kw = p->kernel_w, c_all = j->d.in_c;
  const int32_t tap_bytes = (int32_t)p->row_bytes;
  const int32_t off = p->input_offset;
  const uint32_t off2 = mp_pack16(off, off);
  for (int32_t b = 0; b < j->d.batches; ++b) {
    const int8_t *in_b = j->input + b * j->d.in_h * j->d.in_w * c_all;
    for (int32_t oy = 0; oy < j->d.out_h; ++oy) {
      const int32_t iy0 = oy * p->stride_h - p->pad_top;
      int32_t ky_lo, ky_hi;
      mp_tap_range(iy0, p->dilation_h, p->kernel_h, j->d.in_h, &ky_lo, &ky_hi);
      for (int32_t ox = 0; ox < j->d.out_w; ++ox) {
        const int32_t ix0 = ox * p->stride_w - p->pad_left;
        int32_t kx_lo, kx_hi;
        mp_tap_range(ix0, p->dilation_w, kw, j->d.in_w, &kx_lo, &kx_hi);
        int8_t *out = j->output + ((b * j->d.out_h + oy) * j->d.out_w + ox) * j->d.out_c;
        int32_t c = 0;
        for (; c + 4 <= c_all; c += 4) {
          int32_t a0 = j->bias[c], a1 = j->bias[c + 1], a2 = j->bias[c + 2], a3 = j->bias[c + 3];
          for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            const int8_t *x_row = in_b + (iy0 + ky * p->dilation_h) * j->d.in_w * c_all + c;
            const int8_t *w_row = j->weights + ky * kw * tap_bytes + c;
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
              const uint32_t xv = mp_load32(x_row + (ix0 + kx * p->dilation_w) * c_all);
              const uint32_t wv = mp_load32(w_row + kx * tap_bytes);
              const uint32_t xe = mp_sxtab16(off2, xv), xo = mp_sxtab16_ror8(off2, xv);
              const uint32_t we = mp_sxtb16(wv), wo = mp_sxtb16_ror8(wv);
              a0 = mp_smlabb(xe, we, a0);
              a2 = mp_smlatt(xe, we, a2);
              a1 = mp_smlabb(xo, wo, a1);
              a3 = mp_smlatt(xo, wo, a3);
            }
          }
          out[c] = dw_out(p, a0, j->mult[c], j->shift[c]);
          out[c + 1] = dw_out(p, a1, j->mult[c + 1], j->shift[c + 1]);
          out[c + 2] = dw_out(p, a2, j->mult[c + 2], j->shift[c + 2]);
          out[c + 3] = dw_out(p, a3, j->mult[c + 3], j->shift[c + 3]);
        }
        for (; c < c_all; ++c) {
          int32_t acc = j->bias[c];
          for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            const int32_t row = (b * j->d.in_h + iy0 + ky * p->dilation_h) * j->d.in_w;
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
              const int32_t x = j->input[(row + ix0 + kx * p->dilation_w) * c_all + c];
              acc += (int32_t)j->weights[(ky * kw + kx) * tap_bytes + c] * (x + off);
            }
          }
          out[c] = dw_out(p, acc, j->mult[c], j->shift[c]);
        }
      }
    }
  }
}

mp_status_t mp_op_depthwise_conv2d(const mp_op_ctx_t *ctx) {
  mp_conv_job_t j;
  if (mp_conv_job_init(ctx, &j) != MP_OK) return MP_ERR_OP;
  const mp_conv_params_t *p = j.p;
  if (p->depth_multiplier == 0 || j.d.out_c != j.d.in_c * (int32_t)p->depth_multiplier ||
      p->row_bytes < (uint32_t)j.d.out_c)
    return MP_ERR_OP;
  if (ctx->path == MP_KERNELS_DSP && p->depth_multiplier == 1)
    dw_dsp_m1(&j);
  else
    dw_ref(&j);
  return MP_OK;
}
