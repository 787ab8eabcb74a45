/* FULLY_CONNECTED, int8: TFLM reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel (tensorflow/lite/kernels/internal/reference/integer_ops/
 * fully_connected.h). Per-tensor quantization arrives expanded to per-feature arrays, so
 * one kernel serves both; weight zero points are 0 (the compiler refuses others).
 *
 * Weights (bench_firmware/ops/fully_connected.py): [out_features][row_bytes], rows padded to
 * a word. The DSP path starts each accumulator from folded_bias = bias + input_offset *
 * sum(row), so the inner loop is a plain int8 dot product: SXTB16 (plain and ROR #8) on four
 * inputs and four weights, two SMLADs, for two output features per pass so each input word
 * is loaded and extended once for both. The sums equal TFLM's modulo 2^32, which is all the
 * int32 accumulator keeps. Both paths requantize through mp_requantize(). */
#include <stdint.h>

#include "mp_acle.h"
#include "mp_fixedpoint.h"
#include "mp_kernels.h"

static inline int8_t fc_out(const mp_fc_params_t *p, int32_t acc, int32_t mult, int32_t shift) {
  return mp_requantize_output(acc, mult, shift, p->output_offset, p->act_min, p->act_max);
}

static void fc_ref(const mp_fc_params_t *p, const int8_t *in, int8_t *out, const int8_t *w,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift,
                   int32_t rows) {
  const int32_t n_in = (int32_t)p->in_features, n_out = (int32_t)p->out_features;
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t *x = in + r * n_in;
    for (int32_t o = 0; o < n_out; ++o) {
      const int8_t *row = w + o * (int32_t)p->row_bytes;
      int32_t acc = 0;
      for (int32_t i = 0; i < n_in; ++i)
        acc += (int32_t)row[i] * ((int32_t)x[i] + p->input_offset);
      acc += bias[o];
      out[r * n_out + o] = fc_out(p, acc, mult[o], shift[o]);
    }
  }
}

static void fc_dsp(const mp_fc_params_t *p, const int8_t *in, int8_t *out, const int8_t *w,
                   const int32_t *folded, const int32_t *mult, const int32_t *shift,
                   int32_t rows) {
  const int32_t n_in = (int32_t)p->in_features, n_out = (int32_t)p->out_features;
  const int32_t row_bytes = (int32_t)p->row_bytes;
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t *x = in + r * n_in;
    int32_t o = 0;
    for (; o + 2 <= n_out; o += 2) {
      const int8_t *w0 = w + o * row_bytes, *w1 = w0 + row_bytes;
      int32_t a0 = folded[o], a1 = folded[o + 1];
      int32_t i = 0;
      for (; i + 4 <= n_in; i += 4) {
        const uint32_t xv = mp_load32(x + i);
        const uint32_t xe = mp_sxtb16(xv), xo = mp_sxtb16_ror8(xv);
        const uint32_t v0 = mp_load32(w0 + i), v1 = mp_load32(w1 + i);
        a0 = mp_smlad(xe, mp_sxtb16(v0), a0);
        a0 = mp_smlad(xo, mp_sxtb16_ror8(v0), a0);
        a1 = mp_smlad(xe, mp_sxtb16(v1), a1);
        a1 = mp_smlad(xo, mp_sxtb16_ror8(v1), a1);
      }
      for (; i < n_in; ++i) {
        a0 += (int32_t)w0[i] * x[i];
        a1 += (int32_t)w1[i] * x[i];
      }
      out[r * n_out + o] = fc_out(p, a0, mult[o], shift[o]);
      out[r * n_out + o + 1] = fc_out(p, a1, mult[o + 1], shift[o + 1]);
    }
    if (o < n_out) {
      const int8_t *w0 = w + o * row_bytes;
      int32_t a0 = folded[o];
      int32_t i = 0;
      for (; i + 4 <= n_in; i += 4) {
        const uint32_t xv = mp_load32(x + i), v0 = mp_load32(w0 + i);
        a0 = mp_smlad(mp_sxtb16(xv), mp_sxtb16(v0), a0);
        a0 = mp_smlad(mp_sxtb16_ror8(xv), mp_sxtb16_ror8(v0), a0);
      }
      for (; i < n_in; ++i) a0 += (int32_t)w0[i] * x[i];
      out[r * n_out + o] = fc_out(p, a0, mult[o], shift[o]);
    }
  }
}

mp_status_t mp_op_fully_connected(const mp_op_ctx_t *ctx) {
  if (ctx->params == 0 || ctx->n_inputs < 1) return MP_ERR_OP;
  const mp_fc_params_t *p = (const mp_fc_params_t *)ctx->params;
  if (p->in_features == 0 || p->out_features == 0 || p->row_bytes < p->in_features ||
      ctx->output->bytes % p->out_features != 0)
    return MP_ERR_OP;
  const int32_t rows = (int32_t)(ctx->output->bytes / p->out_features);
  if (ctx->input[0]->bytes != (uint32_t)rows * p->in_features) return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  const int8_t *w = MP_PLAN_AT(ctx, int8_t, p->weights_off);
  const int32_t *mult = MP_PLAN_AT(ctx, int32_t, p->mult_off);
  const int32_t *shift = MP_PLAN_AT(ctx, int32_t, p->shift_off);
  if (ctx->path == MP_KERNELS_DSP)
    fc_dsp(p, in, out, w, MP_PLAN_AT(ctx, int32_t, p->folded_bias_off), mult, shift, rows);
  else
    fc_ref(p, in, out, w, MP_PLAN_AT(ctx, int32_t, p->bias_off), mult, shift, rows);
  return MP_OK;
}
