/* RELU and RELU6 on int8, as TFLM's activations (tensorflow/lite/micro/kernels/
 * activations_common.cc): RELU requantizes x - input zero point into the output's
 * quantization and clamps (ReluQuantized); RELU6 only clamps the raw values to the input's
 * quantized 0 and 6 (Relu6Quantized). The compiler picks the mode. */
#include "mp_fixedpoint.h"
#include "mp_kernels.h"

mp_status_t mp_op_relu(const mp_op_ctx_t *ctx) {
  const mp_activation_params_t *p = (const mp_activation_params_t *)ctx->params;
  if (ctx->n_inputs < 1 || p == 0) return MP_ERR_OP;
  const uint32_t n = ctx->output->bytes;
  if (ctx->input[0]->bytes != n) return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  if (p->mode == MP_ACT_CLAMP) {
    for (uint32_t i = 0; i < n; ++i) out[i] = (int8_t)mp_clamp(in[i], p->act_min, p->act_max);
  } else if (p->mode == MP_ACT_REQUANT) {
    for (uint32_t i = 0; i < n; ++i) {
      const int32_t v = p->output_offset + mp_requantize(in[i] + p->input_offset, p->mult, p->shift);
      out[i] = (int8_t)mp_clamp(v, p->act_min, p->act_max);
    }
  } else {
    return MP_ERR_OP;
  }
  return MP_OK;
}
