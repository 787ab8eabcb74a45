/* MEAN over H and W of an int8 NHWC tensor, as TFLM's EvalIntegerMean
 * (tensorflow/lite/micro/kernels/reduce_common.cc), which runs QuantizedMeanOrSum
 * (reference/reduce.h): the int32 sum of each channel's H * W values, offset by
 * -input_zero_point * count (wrapping, as TFLM's int64 -> int32 cast), requantized with a
 * multiplier that already includes 1 / count, plus the output zero point, clamped.
 * Channels are summed in blocks so the input is read in order. */
/* Off the hot path of the networks mcuprof measures: compiled for size, which keeps the
 * firmware inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#pragma GCC optimize("Os")
#include "mp_fixedpoint.h"
#include "mp_kernels.h"

#define MEAN_BLOCK 64 /* channels summed per pass; int32 accumulators on the stack */

mp_status_t mp_op_mean(const mp_op_ctx_t *ctx) {
  const mp_mean_params_t *p = (const mp_mean_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0) return MP_ERR_OP;
  const uint16_t *s = ctx->input[0]->shape;
  const uint32_t batches = s[0], depth = s[3];
  const uint32_t count = (uint32_t)s[1] * s[2];
  if (count == 0 || count != p->count || ctx->output->bytes != batches * depth) return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  int32_t acc[MEAN_BLOCK];
  for (uint32_t b = 0; b < batches; ++b) {
    const int8_t *in_b = in + b * count * depth;
    for (uint32_t c0 = 0; c0 < depth; c0 += MEAN_BLOCK) {
      const uint32_t m = depth - c0 < MEAN_BLOCK ? depth - c0 : MEAN_BLOCK;
      for (uint32_t k = 0; k < m; ++k) acc[k] = 0;
      for (uint32_t i = 0; i < count; ++i) {
        const int8_t *px = in_b + i * depth + c0;
        for (uint32_t k = 0; k < m; ++k) acc[k] += px[k];
      }
      for (uint32_t k = 0; k < m; ++k) {
        const int32_t shifted = (int32_t)((uint32_t)acc[k] + (uint32_t)p->input_offset * count);
        const int32_t v = mp_requantize(shifted, p->mult, p->shift) + p->output_offset;
        out[b * depth + c0 + k] = (int8_t)mp_clamp(v, INT8_MIN, INT8_MAX);
      }
    }
  }
  return MP_OK;
}
