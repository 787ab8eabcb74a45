/* What CONV_2D and DEPTHWISE_CONV_2D both start from: the op's parameters, its tensors'
 * pointers and shapes, and the per-channel arrays from the plan. */
#ifndef MP_CONV_JOB_H
#define MP_CONV_JOB_H

#include <stdint.h>
#include <string.h>

#include "mp_kernels.h"

typedef struct {
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
} mp_conv_dims_t;

typedef struct {
  const mp_conv_params_t *p;
  const int8_t *input;
  int8_t *output;
  const int8_t *weights;
  const int32_t *bias, *mult, *shift;
  mp_conv_dims_t d;
} mp_conv_job_t;

/* Fills `j` from the op context; MP_ERR_OP when the op has no parameters or input, or the
 * checks every convolution needs fail (batch sizes, zero strides or dilations). */
static inline mp_status_t mp_conv_job_init(const mp_op_ctx_t *ctx, mp_conv_job_t *j) {
  if (ctx->params == 0 || ctx->n_inputs < 1) return MP_ERR_OP;
  const mp_conv_params_t *p = (const mp_conv_params_t *)ctx->params;
  const mp_tensor_t *in = ctx->input[0], *out = ctx->output;
  j->p = p;
  j->input = (const int8_t *)ctx->input_data[0];
  j->output = (int8_t *)ctx->output_data;
  j->weights = MP_PLAN_AT(ctx, int8_t, p->weights_off);
  j->bias = MP_PLAN_AT(ctx, int32_t, p->bias_off);
  j->mult = MP_PLAN_AT(ctx, int32_t, p->mult_off);
  j->shift = MP_PLAN_AT(ctx, int32_t, p->shift_off);
  j->d.batches = in->shape[0];
  j->d.in_h = in->shape[1];
  j->d.in_w = in->shape[2];
  j->d.in_c = in->shape[3];
  j->d.out_h = out->shape[1];
  j->d.out_w = out->shape[2];
  j->d.out_c = out->shape[3];
  if (out->shape[0] != in->shape[0] || p->stride_h == 0 || p->stride_w == 0 ||
      p->dilation_h == 0 || p->dilation_w == 0)
    return MP_ERR_OP;
  return MP_OK;
}

/* Byte copies and fills for the kernels' scratch buffers, in the runtime's own code rather than
 * libc's memcpy / memset: those sit elsewhere in flash in an exported library than in the bench
 * firmware, and the instruction fetches of a call per row would move the cycles `mcuprof
 * export` promises to keep. Word at a time: LDR and STR take any alignment on Armv7-M
 * (ARMv7-M ARM A3.2.1), and a 4-byte memcpy compiles to exactly those. The attribute keeps
 * GCC from turning the loops back into library calls. */
#if defined(__GNUC__) && !defined(__clang__)
#define MP_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define MP_NO_LIBCALLS
#endif

static inline MP_NO_LIBCALLS void mp_copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
  for (; n >= 4; n -= 4, dst += 4, src += 4) {
    uint32_t v;
    memcpy(&v, src, sizeof v);
    memcpy(dst, &v, sizeof v);
  }
  for (int32_t i = 0; i < n; ++i) dst[i] = src[i];
}

static inline MP_NO_LIBCALLS void mp_fill_bytes(int8_t *dst, int8_t value, int32_t n) {
  const uint32_t v = 0x01010101u * (uint8_t)value;
  for (; n >= 4; n -= 4, dst += 4) memcpy(dst, &v, sizeof v);
  for (int32_t i = 0; i < n; ++i) dst[i] = value;
}

#endif /* MP_CONV_JOB_H */
