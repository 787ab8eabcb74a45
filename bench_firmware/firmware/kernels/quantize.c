/* QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32), as TFLM's
 * reference AffineQuantize, Requantize and Dequantize (tensorflow/lite/kernels/internal/
 * reference/{quantize,requantize,dequantize}.h).
 *
 * Float rounding must match TFLM bit for bit, so each float result is one IEEE operation
 * (a division or a multiplication, correctly rounded, nothing to contract into an FMA) and
 * rounding to an integer is done exactly, without libm. Float tensors are read and written
 * with memcpy: the arena gives no alignment promise to a float element. */
/* Off the hot path of the networks mcuprof measures: compiled for size, which keeps the
 * firmware inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#pragma GCC optimize("Os")
#include <string.h>

#include "mp_fixedpoint.h"
#include "mp_kernels.h"

mp_status_t mp_op_quantize(const mp_op_ctx_t *ctx) {
  const mp_quantize_params_t *p = (const mp_quantize_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0) return MP_ERR_OP;
  const uint32_t n = ctx->output->bytes;
  int8_t *out = (int8_t *)ctx->output_data;
  if (p->mode == MP_QUANT_FROM_FLOAT) {
    if (ctx->input[0]->type != MP_TYPE_FLOAT32 || ctx->input[0]->bytes != 4u * n) return MP_ERR_OP;
    const uint8_t *in = (const uint8_t *)ctx->input_data[0];
    const float scale = p->scale;
    for (uint32_t i = 0; i < n; ++i) {
      float x;
      memcpy(&x, in + 4u * i, sizeof x);
      const int32_t q = mp_round_half_away(x / scale) + p->output_offset;
      out[i] = (int8_t)mp_clamp(q, INT8_MIN, INT8_MAX);
    }
  } else if (p->mode == MP_QUANT_REQUANT) {
    if (ctx->input[0]->type != MP_TYPE_INT8 || ctx->input[0]->bytes != n) return MP_ERR_OP;
    const int8_t *in = (const int8_t *)ctx->input_data[0];
    for (uint32_t i = 0; i < n; ++i) {
      const int32_t q = mp_requantize(in[i] + p->input_offset, p->mult, p->shift) + p->output_offset;
      out[i] = (int8_t)mp_clamp(q, INT8_MIN, INT8_MAX);
    }
  } else {
    return MP_ERR_OP;
  }
  return MP_OK;
}

mp_status_t mp_op_dequantize(const mp_op_ctx_t *ctx) {
  const mp_dequantize_params_t *p = (const mp_dequantize_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0) return MP_ERR_OP;
  const uint32_t n = ctx->input[0]->bytes;
  if (ctx->input[0]->type != MP_TYPE_INT8 || ctx->output->type != MP_TYPE_FLOAT32 ||
      ctx->output->bytes != 4u * n)
    return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  uint8_t *out = (uint8_t *)ctx->output_data;
  for (uint32_t i = 0; i < n; ++i) {
    /* TFLM multiplies in double and rounds to float once; |x - zp| < 2^9, so the exact
     * product has at most 33 significant bits and the float product rounds it identically. */
    const float y = p->scale * (float)(in[i] - p->zero_point);
    memcpy(out + 4u * i, &y, sizeof y);
  }
  return MP_OK;
}
