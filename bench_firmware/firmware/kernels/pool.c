/* AVERAGE_POOL_2D and MAX_POOL_2D on int8 NHWC, as TFLM's reference_integer_ops::AveragePool
 * and MaxPool (tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h): every window
 * is clipped to the input, an average divides by the number of input values it covered
 * (padding does not count) and rounds half away from zero. Input and output share one
 * quantization, so nothing is requantized; the fused activation is a clamp. */
#include "mp_acle.h"
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

/* pooling.h: "Round to the closest integer value"; C division truncates. */
static inline int8_t pool_average(const mp_pool_params_t *p, int32_t acc, int32_t count) {
  acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
  return (int8_t)mp_clamp(acc, p->act_min, p->act_max);
}

/* The DSP path, for a depth that is a multiple of 4 and windows of at most POOL_LANE_MAX
 * values: four channels per word of input, SXTAB16 and SXTAB16 ROR #8 adding channels (0, 2)
 * and (1, 3) into the 16-bit lanes of two sums (Armv7-M ARM A7.7.179). A lane holds at most
 * 256 * 128 = 2^15 in magnitude, -2^15 being the only value that needs the last bit, so the
 * sums are the reference loop's integers. */
#define POOL_LANE_MAX 256
static void pool_average_dsp(const mp_pool_params_t *p, const pool_shape_t *s,
                             const int8_t *in_b, int32_t oy, int32_t ox, int8_t *out) {
  int32_t iy, ix, y0, y1, x0, x1;
  window(p, s, oy, ox, &iy, &ix, &y0, &y1, &x0, &x1);
  const int32_t count = (y1 - y0) * (x1 - x0), depth = s->depth;
  for (int32_t c = 0; c < depth; c += 4) {
    uint32_t even = 0, odd = 0;
    for (int32_t fy = y0; fy < y1; ++fy) {
      const int8_t *px = in_b + ((iy + fy) * s->in_w + ix + x0) * depth + c;
      for (int32_t fx = x0; fx < x1; ++fx, px += depth) {
        const uint32_t v = mp_load32(px);
        even = mp_sxtab16(even, v);
        odd = mp_sxtab16_ror8(odd, v);
      }
    }
    out[c] = pool_average(p, (int16_t)(even & 0xFFFFu), count);
    out[c + 1] = pool_average(p, (int16_t)(odd & 0xFFFFu), count);
    out[c + 2] = pool_average(p, (int16_t)(even >> 16), count);
    out[c + 3] = pool_average(p, (int16_t)(odd >> 16), count);
  }
}

mp_status_t mp_op_average_pool2d(const mp_op_ctx_t *ctx) {
  pool_shape_t s;
  if (pool_shape(ctx, &s) != MP_OK) return MP_ERR_OP;
  const mp_pool_params_t *p = (const mp_pool_params_t *)ctx->params;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  const int dsp = ctx->path == MP_KERNELS_DSP && (s.depth & 3) == 0 &&
                  p->filter_h * p->filter_w <= POOL_LANE_MAX;
  for (int32_t b = 0; b < s.batches; ++b) {
    const int8_t *in_b = in + (int32_t)b * s.in_h * s.in_w * s.depth;
    for (int32_t oy = 0; oy < s.out_h; ++oy) {
      for (int32_t ox = 0; ox < s.out_w; ++ox) {
        int32_t iy, ix, y0, y1, x0, x1;
        window(p, &s, oy, ox, &iy, &ix, &y0, &y1, &x0, &x1);
        if (y1 <= y0 || x1 <= x0) return MP_ERR_OP; /* TFLM fails on an empty window too */
        const int32_t count = (y1 - y0) * (x1 - x0);
        if (dsp) {
          pool_average_dsp(p, &s, in_b, oy, ox, out);
          out += s.depth;
          continue;
        }
        for (int32_t c = 0; c < s.depth; ++c) {
          int32_t acc = 0;
          for (int32_t fy = y0; fy < y1; ++fy) {
            const int32_t row = (iy + fy) * s.in_w + ix;
            for (int32_t fx = x0; fx < x1; ++fx) acc += in_b[(row + fx) * s.depth + c];
          }
          *out++ = pool_average(p, acc, count);
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
