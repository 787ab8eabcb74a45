/* The public API (mcuprof.h) over the bench firmware's runtime (mp_runtime.h), which this
 * library ships unchanged. */
#include <string.h>

#include "mcuprof.h"
#include "mp_runtime.h"

#ifndef MP_BOARD_CODE
#error "MP_BOARD_CODE must be defined (the Makefile passes the board's plan code)"
#endif

static mp_runtime_t runtime;

int mp_model_init(const uint8_t *plan, uint32_t plan_bytes, uint8_t *arena,
                  uint32_t arena_bytes) {
  mp_runtime_init(&runtime, arena, arena_bytes);
  return (int)mp_runtime_load(&runtime, plan, plan_bytes, (uint16_t)MP_BOARD_CODE);
}

int mp_model_invoke(const void *input, void *output) {
  uint32_t bytes = 0;
  uint8_t *in = mp_runtime_input(&runtime, &bytes);
  if (in == 0) return (int)MP_ERR_NOT_LOADED;
  if (input != 0) memcpy(in, input, bytes);
  const mp_status_t st = mp_runtime_invoke(&runtime);
  if (st != MP_OK) return (int)st;
  if (output != 0) {
    const uint8_t *out = mp_runtime_output(&runtime, &bytes);
    memcpy(output, out, bytes);
  }
  return MP_MODEL_OK;
}

uint8_t *mp_model_input(void) {
  uint32_t bytes = 0;
  return mp_runtime_input(&runtime, &bytes);
}

const uint8_t *mp_model_output(void) {
  uint32_t bytes = 0;
  return mp_runtime_output(&runtime, &bytes);
}

uint32_t mp_model_input_bytes(void) {
  uint32_t bytes = 0;
  (void)mp_runtime_input(&runtime, &bytes);
  return bytes;
}

uint32_t mp_model_output_bytes(void) {
  uint32_t bytes = 0;
  (void)mp_runtime_output(&runtime, &bytes);
  return bytes;
}

uint32_t mp_model_cycles(void) { return runtime.last_total_cycles; }

uint32_t mp_model_layers(void) { return runtime.loaded ? runtime.header->n_ops : 0u; }

uint32_t mp_model_layer_cycles(uint32_t index) {
  return index < mp_model_layers() && index < MP_MAX_OPS ? runtime.layer_cycles[index] : 0u;
}

void mp_model_use_reference_kernels(int reference) {
  mp_runtime_set_kernels(&runtime, reference ? MP_KERNELS_REF : MP_KERNELS_DSP);
}

const char *mp_model_status_str(int status) { return mp_status_str((mp_status_t)status); }
