/* mcuprof runtime: the public API of the library `mcuprof export` writes.
 *
 * The runtime, kernels and plan format are the bench firmware's own (copied unchanged by
 * `mcuprof export`), so an inference here runs the same code on the same plan as the one
 * `mcuprof run` profiles.
 *
 * Lifecycle: mp_model_init() once (validates the plan: magic, version, size, CRC, board,
 * arena), then mp_model_invoke() any number of times. No dynamic allocation, no interrupts;
 * the one thing the runtime needs from the board is board_cycles() (mp_board.h; the exported
 * board support implements it with DWT CYCCNT). */
#ifndef MCUPROF_H
#define MCUPROF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: 0 is success; the others are the runtime's mp_status_t values. */
#define MP_MODEL_OK 0

/* Bind the runtime to `arena` (at least the plan's arena bytes, 16-byte aligned) and load the
 * plan (`plan_bytes` long, 8-byte aligned, in flash or RAM). Loading copies the weights the plan
 * keeps in SRAM (fully connected layers, on boards whose flash has wait states) into the arena:
 * keep the arena for the model between inferences, or call mp_model_init() again before the
 * next. Returns MP_MODEL_OK or a status that mp_model_status_str() names. */
int mp_model_init(const uint8_t *plan, uint32_t plan_bytes, uint8_t *arena,
                  uint32_t arena_bytes);

/* One inference: copies mp_model_input_bytes() from `input` into the arena (skipped when
 * `input` is NULL: fill mp_model_input() in place instead), runs every operator, copies
 * mp_model_output_bytes() to `output` (skipped when NULL: read mp_model_output()). */
int mp_model_invoke(const void *input, void *output);

/* The input and output tensors in the arena, and their sizes in bytes. */
uint8_t *mp_model_input(void);
const uint8_t *mp_model_output(void);
uint32_t mp_model_input_bytes(void);
uint32_t mp_model_output_bytes(void);

/* Cycles (DWT CYCCNT) of the last mp_model_invoke(): in total, and of operator `index`
 * (0 .. mp_model_layers() - 1). The total is what `mcuprof run` reports as cycles per run. */
uint32_t mp_model_cycles(void);
uint32_t mp_model_layers(void);
uint32_t mp_model_layer_cycles(uint32_t index);

/* 1: the portable C reference kernels; 0 (the default where the core has the DSP extension):
 * the DSP-extension kernels. Both give bit-identical outputs. */
void mp_model_use_reference_kernels(int reference);

/* A short name of a status, e.g. "crc mismatch". */
const char *mp_model_status_str(int status);

#ifdef __cplusplus
}
#endif

#endif /* MCUPROF_H */
