/* PAD / PADV2 on int8 (rank-4 view): every output value outside the input is pad_value, every
 * other one is the input value unchanged, as TFLM's reference_ops::Pad
 * (tensorflow/lite/kernels/internal/reference/pad.h). The input is copied row by row (the
 * innermost dimension is contiguous in both tensors). */
/* Off the hot path of the networks mcuprof measures: compiled for size, which keeps the
 * firmware inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#pragma GCC optimize("Os")
#include <string.h>

#include "mp_kernels.h"

mp_status_t mp_op_pad(const mp_op_ctx_t *ctx) {
  const mp_pad_params_t *p = (const mp_pad_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0) return MP_ERR_OP;
  const uint16_t *is = ctx->input[0]->shape;
  const uint16_t *os = ctx->output->shape;
  for (int d = 0; d < 4; ++d)
    if ((uint32_t)is[d] + p->before[d] + p->after[d] != os[d]) return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  memset(out, (int8_t)p->pad_value, ctx->output->bytes);
  for (uint32_t n = 0; n < is[0]; ++n) {
    for (uint32_t h = 0; h < is[1]; ++h) {
      for (uint32_t w = 0; w < is[2]; ++w) {
        const uint32_t src = ((n * is[1] + h) * is[2] + w) * is[3];
        const uint32_t dst =
            (((n + p->before[0]) * os[1] + h + p->before[1]) * os[2] + w + p->before[2]) * os[3] +
            p->before[3];
        memcpy(out + dst, in + src, is[3]);
      }
    }
  }
  return MP_OK;
}
