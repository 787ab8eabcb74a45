/* The protocol's shared state: loading the plan, and keeping the input intact across runs. */
/* Serial protocol code runs outside the timed inference: compiled for size, which keeps the
 * firmware image inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("Os")
#endif

#include <string.h>

#include "mp_board.h"
#include "mp_protocol.h"
#include "mp_session.h"

mp_session_t mp_session;

const char *mp_status_token(mp_status_t status) {
  switch (status) {
    case MP_OK: return "ok";
    case MP_ERR_NOT_LOADED: return "not-loaded";
    case MP_ERR_MAGIC: return "magic";
    case MP_ERR_VERSION: return "version";
    case MP_ERR_SIZE: return "size";
    case MP_ERR_CRC: return "crc";
    case MP_ERR_BOARD: return "board";
    case MP_ERR_ARENA: return "arena";
    case MP_ERR_OP: return "op";
  }
  return "unknown";
}

int mp_parse_u32(const char *s, uint32_t *out) {
  uint32_t v = 0;
  if (*s == '\0') return 0;
  for (; *s != '\0'; s++) {
    uint32_t d;
    if (*s < '0' || *s > '9') return 0;
    d = (uint32_t)(*s - '0');
    if (v > (0xffffffffu - d) / 10u) return 0;
    v = v * 10u + d;
  }
  *out = v;
  return 1;
}

static int ranges_overlap(uint32_t a_off, uint32_t a_bytes, uint32_t b_off, uint32_t b_bytes) {
  return (uint64_t)a_off < (uint64_t)b_off + b_bytes &&
         (uint64_t)b_off < (uint64_t)a_off + a_bytes;
}

/* Whether some operator writes over the input tensor's bytes: the memory planner may give
 * the input's space to a later tensor once the input is consumed. */
static int input_is_reused(const mp_runtime_t *rt) {
  const mp_plan_header_t *h = rt->header;
  const mp_tensor_t *in;
  uint32_t i;
  if (h->input_tensor >= h->n_tensors) return 0;
  in = &rt->tensors[h->input_tensor];
  for (i = 0; i < h->n_ops; i++) {
    const mp_tensor_t *out;
    if (rt->ops[i].output >= h->n_tensors) continue;
    out = &rt->tensors[rt->ops[i].output];
    if (ranges_overlap(in->arena_off, in->bytes, out->arena_off, out->bytes)) return 1;
  }
  return 0;
}

/* An ad01 plan with int8 input and output of one size scores as the EEMBC AD reference DUT
 * (mp_session.h). The float32 input needs 4 bytes per element above the plan's arena, below
 * the stash, word aligned; without that room the plan takes int8 uploads only. */
static void setup_anomaly_score(mp_session_t *s) {
  const mp_runtime_t *rt = s->rt;
  const char *name = mp_mlperf_name();
  uint32_t out_bytes = 0, top, need;
  (void)mp_runtime_output(rt, &out_bytes);
  if (name == NULL || !mp_streq(name, "ad01")) return;
  if ((rt->header->flags & (MP_FLAG_FLOAT_INPUT | MP_FLAG_FLOAT_OUTPUT)) != 0u) return;
  if (s->input_bytes == 0u || out_bytes != s->input_bytes) return;
  s->ad_score = 1;
  top = rt->arena_capacity - (s->stash != NULL ? s->input_bytes : 0u);
  need = 4u * s->input_bytes;
  if (rt->header->arena_bytes > top || need > top - rt->header->arena_bytes) return;
  top = (top - need) & ~3u;
  if (top < rt->header->arena_bytes) return;
  s->features = (float *)(void *)(rt->arena + top);
}

void mp_session_reload(void) {
  mp_session_t *s = &mp_session;
  mp_runtime_t *rt = s->rt;
  uint32_t region_bytes = 0;
  const uint8_t *region = board_model_region(&region_bytes);
  const mp_kernel_path_t path = rt->kernel_path;

  s->plan_status = mp_runtime_load(rt, region, region_bytes, board_code);
  mp_runtime_set_kernels(rt, path);

  s->input = NULL;
  s->input_bytes = 0;
  s->expected = 0;
  s->received = 0;
  s->input_crc = 0;
  s->input_reused = 0;
  s->stash = NULL;
  s->input_stale = 0;
  s->ad_score = 0;
  s->features = NULL;
  s->features_float = 0;
  s->have_results = 0;
  s->runs = 0;
  if (s->plan_status != MP_OK) return;

  s->input = mp_runtime_input(rt, &s->input_bytes);
  s->input_reused = input_is_reused(rt);
  if (s->input_reused && rt->header->arena_bytes <= rt->arena_capacity &&
      s->input_bytes <= rt->arena_capacity - rt->header->arena_bytes) {
    s->stash = rt->arena + (rt->arena_capacity - s->input_bytes);
  }
  setup_anomaly_score(s);
}

void mp_session_restore_input(void) {
  mp_session_t *s = &mp_session;
  if (s->stash != NULL) memcpy(s->input, s->stash, s->input_bytes);
}
