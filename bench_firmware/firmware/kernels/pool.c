/* AVERAGE_POOL_2D and MAX_POOL_2D on int8 NHWC, as TFLM's reference_integer_ops::AveragePool
 * and MaxPool (tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h): every window
 * is clipped to the input, an average divides by the number of input values it covered
 * (padding does not count) and rounds half away from zero. Input and output share one
 * quantization, so nothing is requantized; the fused activation is a clamp. */
#include "mp_fixedpoint.h"
#include "mp_kernels.h"

typedef struct {
  int32_t batches, in_h, in_w, depth, out_h, out_w;
} pool_shape_t;

static mp_status_t pool_shape(const mp_op_ctx_t *ctx, pool_shape_t *s) {
  if (ctx->n_inputs < 1 || ctx->params == 0) return MP_ERR_OP;
  const mp_tensor_t *in = ctx->input[0];
  const mp_tensor_t *out = ctx->output;
  if (in->shape[0] != out->shape[0] || in->shape[3] != out->shape[3]) return MP_ERR_OP;
  s->batches = in->shape[0];
  s->in_h = in->shape[1];
  s->in_w = in->shape[2];
  s->depth = in->shape[3];
  s->out_h = out->shape[1];
  s->out_w = out->shape[2];
  return MP_OK;
}

/* The window of output (oy, ox), clipped to the input: rows [*y0, *y1), columns [*x0, *x1)
 * relative to the origin (*iy, *ix). */
static void window(const mp_pool_params_t *p, const pool_shape_t *s, int32_t oy, int32_t ox,
                   int32_t *iy, int32_t *ix, int32_t *y0, int32_t *y1, int32_t *x0,
                   int32_t *x1) {
  *iy = oy * (int32_t)p->stride_h - p->pad_top;
  *ix = ox * (int32_t)p->stride_w - p->pad_left;
  *y0 = *iy < 0 ? -*iy : 0;
  *x0 = *ix < 0 ? -*ix : 0;
  *y1 = s->in_h - *iy < (int32_t)p->filter_h ? s->in_h - *iy : (int32_t)p->filter_h;
  *x1 = s->in_w - *ix < (int32_t)p->filter_w ? s->in_w - *ix : (int32_t)p->filter_w;
}

mp_status_t mp_op_average_pool2d(const mp_op_ctx_t *ctx) {
  pool_shape_t s;
  if (pool_shape(ctx, &s) != MP_OK) return MP_ERR_OP;
  const mp_pool_params_t *p = (const mp_pool_params_t *)ctx->params;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  for (int32_t b = 0; b < s.batches; ++b) {
    const int8_t *in_b = in + (int32_t)b * s.in_h * s.in_w * s.depth;
    for (int32_t oy = 0; oy < s.out_h; ++oy) {
      for (int32_t ox = 0; ox < s.out_w; ++ox) {
        int32_t iy, ix, y0, y1, x0, x1;
        window(p, &s, oy, ox, &iy, &ix, &y0, &y1, &x0, &x1);
        if (y1 <= y0 || x1 <= x0) return MP_ERR_OP; /* TFLM fails on an empty window too */
        const int32_t count = (y1 - y0) * (x1 - x0);
        for (int32_t c = 0; c < s.depth; ++c) {
          int32_t acc = 0;
          for (int32_t fy = y0; fy < y1; ++fy) {
            const int32_t row = (iy + fy) * s.in_w + ix;
            for (int32_t fx = x0; fx < x1; ++fx) acc += in_b[(row + fx) * s.depth + c];
          }
          /* pooling.h: "Round to the closest integer value"; C division truncates. */
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          *out++ = (int8_t)mp_clamp(acc, p->act_min, p->act_max);
        }
      }
    }
  }
  return MP_OK;
}

mp_status_t mp_op_max_pool2d(const mp_op_ctx_t *ctx) {
  pool_shape_t s;
  if (pool_shape(ctx, &s) != MP_OK) return MP_ERR_OP;
  const mp_pool_params_t *p = (const mp_pool_params_t *)ctx->params;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  for (int32_t b = 0; b < s.batches; ++b) {
    const int8_t *in_b = in + (int32_t)b * s.in_h * s.in_w * s.depth;
    for (int32_t oy = 0; oy < s.out_h; ++oy) {
      for (int32_t ox = 0; ox < s.out_w; ++ox) {
        int32_t iy, ix, y0, y1, x0, x1;
        window(p, &s, oy, ox, &iy, &ix, &y0, &y1, &x0, &x1);
        for (int32_t c = 0; c < s.depth; ++c) {
          int32_t max = INT8_MIN;
          for (int32_t fy = y0; fy < y1; ++fy) {
            const int32_t row = (iy + fy) * s.in_w + ix;
            for (int32_t fx = x0; fx < x1; ++fx) {
              const int32_t v = in_b[(row + fx) * s.depth + c];
              if (v > max) max = v;
            }
          }
          *out++ = (int8_t)mp_clamp(max, p->act_min, p->act_max);
        }
      }
    }
  }
  return MP_OK;
}
