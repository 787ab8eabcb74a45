/* mcuprof's own commands (`mp-` prefix): plan status and reload, kernel path, cycles,
 * per-layer cycles, input CRC, board facts. Reference at the top of protocol.c. */
/* Serial protocol code runs outside the timed inference: compiled for size, which keeps the
 * firmware image inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("Os")
#endif

#include <string.h>

#include "mp_board.h"
#include "mp_out.h"
#include "mp_protocol.h"
#include "mp_session.h"

static const char *kernels_name(mp_kernel_path_t path) {
  return path == MP_KERNELS_DSP ? "dsp" : "ref";
}

static void field_u32(const char *key, uint32_t v) {
  mp_out_str(",");
  mp_out_str(key);
  mp_out_str("=");
  mp_out_u32(v);
}

static void field_str(const char *key, const char *v) {
  mp_out_str(",");
  mp_out_str(key);
  mp_out_str("=");
  mp_out_str(v);
}

void mp_print_plan(int with_error) {
  const mp_session_t *s = &mp_session;
  const mp_runtime_t *rt = s->rt;
  uint32_t i, out_bytes = 0;

  mp_out_str("m-plan-[status=");
  mp_out_str(mp_status_token(s->plan_status));
  if (s->plan_status != MP_OK) {
    uint32_t region_bytes = 0;
    (void)board_model_region(&region_bytes);
    field_u32("region", region_bytes);
    mp_out_str("]");
    mp_out_end();
    if (with_error) {
      mp_out_str("e-[plan: ");
      mp_out_str(mp_status_str(s->plan_status));
      mp_out_str("]");
      mp_out_end();
    }
    return;
  }
  mp_out_str(",model=");
  for (i = 0; i < sizeof rt->header->model_id; i++) mp_out_hex(rt->header->model_id[i], 2);
  (void)mp_runtime_output(rt, &out_bytes);
  field_u32("board", rt->header->board_code);
  field_u32("ops", rt->header->n_ops);
  field_u32("arena", rt->header->arena_bytes);
  field_u32("capacity", rt->arena_capacity);
  field_u32("bytes", rt->header->total_bytes);
  field_u32("input", s->input_bytes);
  field_u32("output", out_bytes);
  field_str("input-type", (rt->header->flags & MP_FLAG_FLOAT_INPUT) ? "float32" : "int8");
  field_str("output-type", (rt->header->flags & MP_FLAG_FLOAT_OUTPUT) ? "float32" : "int8");
  mp_out_str("]");
  mp_out_end();
}

void mp_cmd_plan(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  mp_print_plan(1);
}

void mp_cmd_reload(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  mp_session_reload();
  mp_print_plan(1);
}

void mp_cmd_kernels(uint32_t argc, char **argv) {
  mp_runtime_t *rt = mp_session.rt;
  if (argc == 2) {
    if (mp_streq(argv[1], "ref")) {
      mp_runtime_set_kernels(rt, MP_KERNELS_REF);
    } else if (mp_streq(argv[1], "dsp")) {
      mp_runtime_set_kernels(rt, MP_KERNELS_DSP);
    } else {
      mp_out_str("e-[mp-kernels: expected ref or dsp, not '");
      mp_out_text(argv[1]);
      mp_out_str("']");
      mp_out_end();
      return;
    }
  }
  mp_out_str("m-kernels-[");
  mp_out_str(kernels_name(rt->kernel_path));
  mp_out_str("]");
  mp_out_end();
}

static int need_results(const char *what) {
  if (mp_session.plan_status == MP_OK && mp_session.have_results) return 1;
  mp_out_str("e-[");
  mp_out_str(what);
  mp_out_str(": no inference since the last upload; run infer first]");
  mp_out_end();
  return 0;
}

void mp_cmd_cycles(uint32_t argc, char **argv) {
  const mp_session_t *s = &mp_session;
  (void)argc;
  (void)argv;
  if (!need_results("mp-cycles")) return;
  mp_out_list("cycles", s->runs < MP_MAX_RUNS ? s->runs : MP_MAX_RUNS, mp_item_u32,
              s->run_cycles);
  if (s->runs > MP_MAX_RUNS) {
    mp_out_str("m-cycles-truncated-");
    mp_out_u32(s->runs);
    mp_out_end();
  }
}

void mp_cmd_layers(uint32_t argc, char **argv) {
  const mp_runtime_t *rt = mp_session.rt;
  uint32_t n;
  (void)argc;
  (void)argv;
  if (!need_results("mp-layers")) return;
  n = rt->header->n_ops < MP_MAX_OPS ? rt->header->n_ops : MP_MAX_OPS;
  mp_out_list("layers", n, mp_item_u32, rt->layer_cycles);
}

void mp_cmd_crc(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  mp_out_str("m-input-crc-[");
  mp_out_hex(mp_session.input_crc, 8);
  mp_out_str("]");
  mp_out_end();
}

void mp_cmd_info(uint32_t argc, char **argv) {
  const mp_runtime_t *rt = mp_session.rt;
  uint32_t region_bytes = 0;
  (void)argc;
  (void)argv;
  (void)board_model_region(&region_bytes);
  mp_out_str("m-info-[board=");
  mp_out_str(board_name);
  field_u32("code", board_code);
  field_u32("clock", board_clock_hz);
  field_u32("arena", rt->arena_capacity);
  field_u32("region", region_bytes);
  field_str("kernels", kernels_name(rt->kernel_path));
  field_str("plan", mp_status_token(mp_session.plan_status));
  field_str("version", MP_FIRMWARE_VERSION);
  field_u32("max-runs", MP_MAX_RUNS);
  field_u32("max-ops", MP_MAX_OPS);
  mp_out_str("]");
  mp_out_end();
}

void mp_print_timestamp_mode(void) {
  mp_out_line(mp_session.energy_mode ? "m-timestamp-mode-energy" : "m-timestamp-mode-performance");
}

void mp_cmd_timestamp_mode(uint32_t argc, char **argv) {
  if (argc == 2) {
    if (mp_streq(argv[1], "energy")) {
      mp_session.energy_mode = 1;
    } else if (mp_streq(argv[1], "performance")) {
      mp_session.energy_mode = 0;
    } else {
      mp_out_str("e-[mp-timestamp-mode: expected energy or performance, not '");
      mp_out_text(argv[1]);
      mp_out_str("']");
      mp_out_end();
      return;
    }
  }
  mp_print_timestamp_mode();
}
