/* The host build as a shared library, for tests: run one plan on one input, with either
 * kernel path, without the serial protocol. Called from bench_firmware/host.py (ctypes). */
#include <stdlib.h>
#include <string.h>

#include "mp_runtime.h"

/* Returns an mp_status_t; on MP_OK, copies the output tensor into `output` and the
 * per-operator cycles (0 on the host) are not reported. `arena_bytes` is how much arena to
 * allocate (the plan's arena_bytes is enough; tests pass more to catch overruns). */
int mp_host_run(const uint8_t *plan, uint32_t plan_bytes, const uint8_t *input,
                uint32_t input_bytes, uint8_t *output, uint32_t output_bytes, int kernel_path,
                uint32_t arena_bytes) {
  static mp_runtime_t rt;
  uint8_t *arena = (uint8_t *)malloc(arena_bytes ? arena_bytes : 1);
  if (!arena) return MP_ERR_ARENA;
  /* A fixed fill makes reads of never-written arena bytes deterministic and visible. */
  memset(arena, 0xA5, arena_bytes);
  mp_runtime_init(&rt, arena, arena_bytes);
  mp_runtime_set_kernels(&rt, kernel_path ? MP_KERNELS_DSP : MP_KERNELS_REF);
  mp_status_t st = mp_runtime_load(&rt, plan, plan_bytes, 0);
  if (st == MP_OK) {
    uint32_t n = 0;
    uint8_t *in = mp_runtime_input(&rt, &n);
    if (n != input_bytes) {
      st = MP_ERR_SIZE;
    } else {
      memcpy(in, input, n);
      st = mp_runtime_invoke(&rt);
      const uint8_t *out = mp_runtime_output(&rt, &n);
      if (st == MP_OK) {
        if (n != output_bytes) st = MP_ERR_SIZE;
        else memcpy(output, out, n);
      }
    }
  }
  free(arena);
  return (int)st;
}

const char *mp_host_status_str(int status) { return mp_status_str((mp_status_t)status); }
