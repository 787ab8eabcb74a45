/* CONCATENATION of int8 tensors along one axis of the rank-4 view: the output is `outer`
 * blocks, each the inputs' blocks of (their extent on the axis) * `inner` bytes in order, as
 * TFLM's reference_ops::Concatenation (reference/concatenation.h). Bytes are copied unchanged:
 * the compiler has checked that every input shares the output's quantization. */
/* Off the hot path of the networks mcuprof measures: compiled for size, which keeps the
 * firmware inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#pragma GCC optimize("Os")
#include <string.h>

#include "mp_kernels.h"

mp_status_t mp_op_concatenation(const mp_op_ctx_t *ctx) {
  const mp_concat_params_t *p = (const mp_concat_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0 || p->axis > 3) return MP_ERR_OP;
  const uint16_t *os = ctx->output->shape;
  uint32_t outer = 1, inner = 1;
  for (uint32_t d = 0; d < p->axis; ++d) outer *= os[d];
  for (uint32_t d = p->axis + 1; d < 4; ++d) inner *= os[d];
  uint32_t total = 0;
  for (uint16_t k = 0; k < ctx->n_inputs; ++k) total += ctx->input[k]->shape[p->axis];
  if (total != os[p->axis] || ctx->output->bytes != outer * total * inner) return MP_ERR_OP;
  int8_t *out = (int8_t *)ctx->output_data;
  for (uint32_t o = 0; o < outer; ++o) {
    for (uint16_t k = 0; k < ctx->n_inputs; ++k) {
      const uint32_t block = (uint32_t)ctx->input[k]->shape[p->axis] * inner;
      memcpy(out, (const int8_t *)ctx->input_data[k] + o * block, block);
      out += block;
    }
  }
  return MP_OK;
}
