/* RESHAPE: the bytes do not change, only the shape; copy when the buffers differ. */
/* Off the hot path of the networks mcuprof measures: compiled for size, which keeps the
 * firmware inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#pragma GCC optimize("Os")
#include <string.h>

#include "mp_kernels.h"

mp_status_t mp_op_reshape(const mp_op_ctx_t *ctx) {
  if (ctx->n_inputs < 1) return MP_ERR_OP;
  if (ctx->output_data != ctx->input_data[0])
    memmove(ctx->output_data, ctx->input_data[0], ctx->output->bytes);
  return MP_OK;
}
