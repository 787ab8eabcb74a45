/* Plan validation and the operator loop, with CYCCNT around every operator. */
#include <string.h>

#include "mp_board.h"
#include "mp_kernels.h"
#include "mp_runtime.h"

static const mp_kernel_fn kernels[MP_OP_MAX + 1] = {
    [MP_OP_CONV_2D] = mp_op_conv2d,
    [MP_OP_DEPTHWISE_CONV_2D] = mp_op_depthwise_conv2d,
    [MP_OP_FULLY_CONNECTED] = mp_op_fully_connected,
    [MP_OP_AVERAGE_POOL_2D] = mp_op_average_pool2d,
    [MP_OP_MAX_POOL_2D] = mp_op_max_pool2d,
    [MP_OP_ADD] = mp_op_add,
    [MP_OP_PAD] = mp_op_pad,
    [MP_OP_RESHAPE] = mp_op_reshape,
    [MP_OP_SOFTMAX] = mp_op_softmax,
    [MP_OP_RELU] = mp_op_relu,
    [MP_OP_RELU6] = mp_op_relu,
    [MP_OP_MEAN] = mp_op_mean,
    [MP_OP_CONCATENATION] = mp_op_concatenation,
    [MP_OP_QUANTIZE] = mp_op_quantize,
    [MP_OP_DEQUANTIZE] = mp_op_dequantize,
};

/* Run once per op when a plan loads (mp_kernels.h). */
static const mp_kernel_fn loaders[MP_OP_MAX + 1] = {
    [MP_OP_FULLY_CONNECTED] = mp_op_fully_connected_load,
};

const char *mp_status_str(mp_status_t status) {
  switch (status) {
    case MP_OK: return "ok";
    case MP_ERR_NOT_LOADED: return "no plan loaded";
    case MP_ERR_MAGIC: return "no plan in the model region (bad magic)";
    case MP_ERR_VERSION: return "plan version mismatch";
    case MP_ERR_SIZE: return "plan size invalid";
    case MP_ERR_CRC: return "crc mismatch";
    case MP_ERR_BOARD: return "plan compiled for another board";
    case MP_ERR_ARENA: return "arena too large for this board";
    case MP_ERR_OP: return "malformed operator";
  }
  return "unknown status";
}

void mp_runtime_init(mp_runtime_t *rt, uint8_t *arena, uint32_t arena_capacity) {
  memset(rt, 0, sizeof(*rt));
  rt->arena = arena;
  rt->arena_capacity = arena_capacity;
#if defined(__ARM_FEATURE_DSP) || defined(MP_HOST)
  rt->kernel_path = MP_KERNELS_DSP;
#else
  rt->kernel_path = MP_KERNELS_REF;
#endif
}

void mp_runtime_set_kernels(mp_runtime_t *rt, mp_kernel_path_t path) { rt->kernel_path = path; }

/* Every offset in the plan must stay inside it; checked once at load so kernels need not. */
static int within(uint32_t off, uint32_t len, uint32_t total) {
  return off <= total && len <= total - off;
}

static mp_status_t check_structure(const mp_runtime_t *rt, uint32_t total) {
  const mp_plan_header_t *h = rt->header;
  if (!within(h->tensors_off, (uint32_t)h->n_tensors * sizeof(mp_tensor_t), total) ||
      !within(h->ops_off, (uint32_t)h->n_ops * sizeof(mp_op_t), total) ||
      (h->tensors_off & 3u) || (h->ops_off & 3u))
    return MP_ERR_SIZE;
  if (h->input_tensor >= h->n_tensors || h->output_tensor >= h->n_tensors) return MP_ERR_OP;
  if (h->n_ops > MP_MAX_OPS) return MP_ERR_OP;
  for (uint16_t t = 0; t < h->n_tensors; ++t) {
    if (!within(rt->tensors[t].arena_off, rt->tensors[t].bytes, h->arena_bytes)) return MP_ERR_ARENA;
  }
  for (uint16_t i = 0; i < h->n_ops; ++i) {
    const mp_op_t *op = &rt->ops[i];
    if (op->code == 0 || op->code > MP_OP_MAX || kernels[op->code] == 0) return MP_ERR_OP;
    if (op->n_inputs > MP_MAX_INPUTS || op->output >= h->n_tensors) return MP_ERR_OP;
    if (!within(op->inputs_off, op->n_inputs * 2u, total) || (op->inputs_off & 1u)) return MP_ERR_OP;
    if (op->params_off != 0 && (!within(op->params_off, 4, total) || (op->params_off & 3u)))
      return MP_ERR_OP;
    const uint16_t *ins = (const uint16_t *)(const void *)(rt->plan + op->inputs_off);
    for (uint16_t k = 0; k < op->n_inputs; ++k)
      if (ins[k] >= h->n_tensors) return MP_ERR_OP;
  }
  return MP_OK;
}

static void make_ctx(const mp_runtime_t *rt, const mp_op_t *op, mp_op_ctx_t *ctx);

mp_status_t mp_runtime_load(mp_runtime_t *rt, const uint8_t *plan, uint32_t region_bytes,
                            uint16_t board) {
  rt->loaded = 0;
  rt->plan = plan;
  rt->header = (const mp_plan_header_t *)(const void *)plan;
  if (region_bytes < sizeof(mp_plan_header_t) || memcmp(plan, MP_PLAN_MAGIC, 4) != 0)
    return MP_ERR_MAGIC;
  const mp_plan_header_t *h = rt->header;
  if (h->version != MP_PLAN_VERSION || h->header_bytes != sizeof(mp_plan_header_t))
    return MP_ERR_VERSION;
  if (h->total_bytes > region_bytes || h->total_bytes < sizeof(mp_plan_header_t))
    return MP_ERR_SIZE;
  if (mp_crc32(0, plan + MP_PLAN_CRC_START, h->total_bytes - MP_PLAN_CRC_START) != h->crc32)
    return MP_ERR_CRC;
  /* The host build (code 0) runs any board's plan: it exists to check outputs. */
  if (board != 0 && h->board_code != board) return MP_ERR_BOARD;
  if (h->arena_bytes > rt->arena_capacity) return MP_ERR_ARENA;
  rt->tensors = (const mp_tensor_t *)(const void *)(plan + h->tensors_off);
  rt->ops = (const mp_op_t *)(const void *)(plan + h->ops_off);
  mp_status_t st = check_structure(rt, h->total_bytes);
  if (st != MP_OK) return st;
  for (uint16_t i = 0; i < h->n_ops; ++i) {
    const mp_op_t *op = &rt->ops[i];
    if (loaders[op->code] == 0) continue;
    mp_op_ctx_t ctx;
    make_ctx(rt, op, &ctx);
    st = loaders[op->code](&ctx);
    if (st != MP_OK) return st;
  }
  memset(rt->layer_cycles, 0, sizeof(rt->layer_cycles));
  rt->loaded = 1;
  return MP_OK;
}

static void make_ctx(const mp_runtime_t *rt, const mp_op_t *op, mp_op_ctx_t *ctx) {
  const uint16_t *ins = (const uint16_t *)(const void *)(rt->plan + op->inputs_off);
  ctx->plan = rt->plan;
  ctx->plan_bytes = rt->header->total_bytes;
  ctx->params = op->params_off ? rt->plan + op->params_off : 0;
  ctx->n_inputs = op->n_inputs;
  for (uint16_t k = 0; k < op->n_inputs; ++k) {
    ctx->input[k] = &rt->tensors[ins[k]];
    ctx->input_data[k] = rt->arena + rt->tensors[ins[k]].arena_off;
  }
  ctx->output = &rt->tensors[op->output];
  ctx->output_data = rt->arena + rt->tensors[op->output].arena_off;
  ctx->path = rt->kernel_path;
  ctx->arena = rt->arena;
  ctx->arena_bytes = rt->header->arena_bytes;
}

mp_status_t mp_runtime_invoke(mp_runtime_t *rt) {
  if (!rt->loaded) return MP_ERR_NOT_LOADED;
  const uint32_t start = board_cycles();
  uint32_t before = start;
  for (uint16_t i = 0; i < rt->header->n_ops; ++i) {
    const mp_op_t *op = &rt->ops[i];
    mp_op_ctx_t ctx;
    make_ctx(rt, op, &ctx);
    const mp_status_t st = kernels[op->code](&ctx);
    const uint32_t after = board_cycles();
    rt->layer_cycles[i] = after - before;
    before = after;
    if (st != MP_OK) return st;
  }
  rt->last_total_cycles = board_cycles() - start;
  return MP_OK;
}

uint8_t *mp_runtime_input(mp_runtime_t *rt, uint32_t *bytes) {
  if (!rt->loaded) {
    *bytes = 0;
    return 0;
  }
  const mp_tensor_t *t = &rt->tensors[rt->header->input_tensor];
  *bytes = t->bytes;
  return rt->arena + t->arena_off;
}

const uint8_t *mp_runtime_output(const mp_runtime_t *rt, uint32_t *bytes) {
  if (!rt->loaded) {
    *bytes = 0;
    return 0;
  }
  const mp_tensor_t *t = &rt->tensors[rt->header->output_tensor];
  *bytes = t->bytes;
  return rt->arena + t->arena_off;
}
