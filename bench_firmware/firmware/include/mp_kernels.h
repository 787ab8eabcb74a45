/* The operator kernels. Each takes one context and returns MP_OK or an error status.
 * Kernels with a DSP path (conv, depthwise conv, fully connected) pick it when
 * ctx->path == MP_KERNELS_DSP; both paths must give identical bytes. */
#ifndef MP_KERNELS_H
#define MP_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "mp_acle.h"

#include "mp_plan.h"
#include "mp_runtime.h"

#define MP_MAX_INPUTS 8

typedef struct {
  const uint8_t *plan;              /* the whole plan: weights are plan + offset */
  uint32_t plan_bytes;              /* its total_bytes (validated at load) */
  const void *params;               /* the op's parameter struct, NULL when it has none */
  uint16_t n_inputs;
  const mp_tensor_t *input[MP_MAX_INPUTS];
  void *input_data[MP_MAX_INPUTS];  /* arena pointers */
  const mp_tensor_t *output;
  void *output_data;
  mp_kernel_path_t path;
  uint8_t *arena;                   /* the tensor arena: scratch buffers are arena + offset */
  uint32_t arena_bytes;             /* the plan's arena size (validated at load) */
} mp_op_ctx_t;

/* The op's scratch buffer, `bytes` long at arena offset `off` (from the plan); NULL when it
 * does not lie inside the arena or is not word-aligned. */
static inline void *mp_scratch(const mp_op_ctx_t *ctx, uint32_t off, uint32_t bytes) {
  if (bytes == 0 || off > ctx->arena_bytes || bytes > ctx->arena_bytes - off || (off & 3u))
    return 0;
  return ctx->arena + off;
}

/* Whether `bytes` bytes at plan offset `off` lie inside the plan. */
static inline int mp_in_plan(const mp_op_ctx_t *ctx, uint32_t off, uint32_t bytes) {
  return off <= ctx->plan_bytes && bytes <= ctx->plan_bytes - off;
}

/* 4-bit weights (plan weight_bits 4; bench_firmware/ops/__init__.py weight_rows): each row
 * padded to a multiple of 8 weights, each 8 packed into 4 bytes, byte k holding weight k in
 * its low nibble and weight k + 4 in its high nibble, so one word unpacks into two words of
 * int8 in order (mp_int4_word). Each nibble is a signed 4-bit value, as in TFLite's INT4
 * tensors; (n ^ 8) - 8 sign-extends it. */
static inline uint32_t mp_int4_row_bytes(uint32_t weights) { return ((weights + 7u) & ~7u) / 2u; }

static inline int32_t mp_int4_at(const int8_t *row, int32_t k) {
  const uint32_t b = (uint8_t)row[(k >> 3) * 4 + (k & 3)];
  return (int32_t)(((k & 4) ? b >> 4 : b & 0x0Fu) ^ 8u) - 8;
}

/* One packed word: weights 0-3 of its block in `lo`, 4-7 in `hi`, one int8 per byte. */
static inline void mp_int4_word(uint32_t v, uint32_t *lo, uint32_t *hi) {
  const uint32_t nibbles = 0x0F0F0F0Fu, eights = 0x08080808u;
  *lo = mp_ssub8((v & nibbles) ^ eights, eights);
  *hi = mp_ssub8(((v >> 4) & nibbles) ^ eights, eights);
}

/* A packed row of n weights (a multiple of 4) unpacked to int8 at dst. */
static inline void mp_unpack_int4_row(int8_t *dst, const int8_t *src, int32_t n) {
  uint32_t lo, hi;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8, src += 4) {
    mp_int4_word(mp_load32(src), &lo, &hi);
    memcpy(dst + i, &lo, 4);
    memcpy(dst + i + 4, &hi, 4);
  }
  if (i < n) {
    mp_int4_word(mp_load32(src), &lo, &hi);
    memcpy(dst + i, &lo, 4);
  }
}

/* A pointer to plan data at byte offset `off`. */
#define MP_PLAN_AT(ctx, type, off) ((const type *)(const void *)((ctx)->plan + (off)))

typedef mp_status_t (*mp_kernel_fn)(const mp_op_ctx_t *ctx);

mp_status_t mp_op_conv2d(const mp_op_ctx_t *ctx);
mp_status_t mp_op_depthwise_conv2d(const mp_op_ctx_t *ctx);
mp_status_t mp_op_fully_connected(const mp_op_ctx_t *ctx);
mp_status_t mp_op_average_pool2d(const mp_op_ctx_t *ctx);
mp_status_t mp_op_max_pool2d(const mp_op_ctx_t *ctx);
mp_status_t mp_op_add(const mp_op_ctx_t *ctx);
mp_status_t mp_op_pad(const mp_op_ctx_t *ctx);
mp_status_t mp_op_reshape(const mp_op_ctx_t *ctx);
mp_status_t mp_op_softmax(const mp_op_ctx_t *ctx);
mp_status_t mp_op_relu(const mp_op_ctx_t *ctx);   /* RELU and RELU6 */
mp_status_t mp_op_mean(const mp_op_ctx_t *ctx);
mp_status_t mp_op_concatenation(const mp_op_ctx_t *ctx);
mp_status_t mp_op_quantize(const mp_op_ctx_t *ctx);
mp_status_t mp_op_dequantize(const mp_op_ctx_t *ctx);

/* What an op does once, when its plan loads (mp_runtime_load), before any inference: the
 * fully connected layer copies its weights into the arena where the plan says so. */
mp_status_t mp_op_fully_connected_load(const mp_op_ctx_t *ctx);

#endif /* MP_KERNELS_H */
