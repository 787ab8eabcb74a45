/* The runtime: validates a plan and runs it on the arena, timing every operator.
 *
 * Lifecycle: mp_runtime_load() (validates header, board, sizes and CRC; never runs an invalid
 * plan) → mp_runtime_input() to fill the input → mp_runtime_invoke() any number of times →
 * mp_runtime_output(). A failed load leaves the runtime unloaded; invoke then answers
 * MP_ERR_NOT_LOADED. */
#ifndef MP_RUNTIME_H
#define MP_RUNTIME_H

#include <stdint.h>

#include "mp_plan.h"

typedef enum {
  MP_OK = 0,
  MP_ERR_NOT_LOADED,   /* no valid plan loaded */
  MP_ERR_MAGIC,        /* the model region holds no plan (bad magic) */
  MP_ERR_VERSION,      /* plan version differs from the firmware's */
  MP_ERR_SIZE,         /* total_bytes exceeds the model region, or sections overrun */
  MP_ERR_CRC,          /* CRC mismatch: the plan is corrupt or half-written */
  MP_ERR_BOARD,        /* plan compiled for another board */
  MP_ERR_ARENA,        /* plan's arena exceeds this board's arena */
  MP_ERR_OP,           /* unknown operator code or malformed operator */
} mp_status_t;

typedef enum {
  MP_KERNELS_REF = 0,  /* portable C reference kernels */
  MP_KERNELS_DSP = 1,  /* Cortex-M DSP-extension kernels (ACLE intrinsics) */
} mp_kernel_path_t;

/* Most timed runs whose total cycles the runtime keeps for `mp-cycles%`. */
#define MP_MAX_RUNS 64
/* Most operators whose per-layer cycles are kept. */
#define MP_MAX_OPS 256

typedef struct {
  const uint8_t *plan;
  const mp_plan_header_t *header;
  const mp_tensor_t *tensors;
  const mp_op_t *ops;
  uint8_t *arena;
  uint32_t arena_capacity;
  mp_kernel_path_t kernel_path;
  int loaded;
  /* Cycles of each operator in the last invoke (CYCCNT deltas) and the invoke's total. */
  uint32_t layer_cycles[MP_MAX_OPS];
  uint32_t last_total_cycles;
} mp_runtime_t;

void mp_runtime_init(mp_runtime_t *rt, uint8_t *arena, uint32_t arena_capacity);
mp_status_t mp_runtime_load(mp_runtime_t *rt, const uint8_t *plan, uint32_t region_bytes,
                            uint16_t board_code);
mp_status_t mp_runtime_invoke(mp_runtime_t *rt);
void mp_runtime_set_kernels(mp_runtime_t *rt, mp_kernel_path_t path);

/* Input / output tensor buffers in the arena and their sizes in bytes. */
uint8_t *mp_runtime_input(mp_runtime_t *rt, uint32_t *bytes);
const uint8_t *mp_runtime_output(const mp_runtime_t *rt, uint32_t *bytes);

/* A short, stable, human-readable name of a status, e.g. "crc mismatch". */
const char *mp_status_str(mp_status_t status);

/* CRC-32 (the zlib / ISO-HDLC polynomial, reflected), for plan and input checks. */
uint32_t mp_crc32(uint32_t crc, const uint8_t *data, uint32_t n);

#endif /* MP_RUNTIME_H */
