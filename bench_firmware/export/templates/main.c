/* Example application written by `mcuprof export`: bring the board up (clocks, flash wait
 * states and ART / caches, UART, DWT: the bench firmware's own board support), run the model
 * on the example input, and print the cycles of every run, the output and the per-layer
 * cycles over the ST-LINK virtual COM port (115200 8N1).
 *
 * Lines it prints (the first runs warm the flash caches, as `mcuprof run`'s warm-up does):
 *   mcuprof-example board=<board> model=<model id>
 *   run <i> cycles <n> us <n>
 *   output <int8 values, comma-separated>      (int8 models)
 *   output-hex <the output bytes in hex>
 *   layers <cycles of each operator in the last run, comma-separated>
 *   done
 * or `error <status>` when the plan does not load or a run fails. */
#include <stdint.h>

#include "mcuprof.h"
#include "model.h"
#include "mp_board.h"

/* Inferences run, each printed; `make RUNS=n` changes it. */
#ifndef MP_EXAMPLE_RUNS
#define MP_EXAMPLE_RUNS 2
#endif
/* 1: the portable reference kernels (`mcuprof run --kernels ref`); `make KERNELS=ref`. */
#ifndef MP_EXAMPLE_REFERENCE_KERNELS
#define MP_EXAMPLE_REFERENCE_KERNELS 0
#endif

static uint8_t arena[MP_MODEL_ARENA_BYTES] __attribute__((aligned(16)));
static uint8_t output[MP_MODEL_OUTPUT_BYTES] __attribute__((aligned(4)));

static void put(const char *s) {
  uint32_t n = 0;
  while (s[n] != '\0') ++n;
  board_uart_write(s, n);
}

static void put_u32(uint32_t v) {
  char buf[11];
  int i = (int)sizeof buf;
  do {
    buf[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  board_uart_write(&buf[i], (uint32_t)(sizeof buf - (uint32_t)i));
}

static void put_i32(int32_t v) {
  if (v < 0) {
    put("-");
    put_u32((uint32_t)0 - (uint32_t)v);
  } else {
    put_u32((uint32_t)v);
  }
}

static void put_hex8(uint8_t v) {
  static const char digits[] = "0123456789abcdef";
  char buf[2] = {digits[v >> 4], digits[v & 15u]};
  board_uart_write(buf, 2u);
}

static void idle(void) {
  /* A product would run its application here; the example waits on the UART forever. */
  for (;;) (void)board_uart_getc();
}

static void fail(int status) {
  put("error ");
  put(mp_model_status_str(status));
  put("\r\n");
  idle();
}

int main(void) {
  board_init();
  put("mcuprof-example board=");
  put(board_name);
  put(" model=" MP_MODEL_ID "\r\n");

  int st = mp_model_init(mp_model_plan, MP_MODEL_PLAN_BYTES, arena, sizeof arena);
  if (st != MP_MODEL_OK) fail(st);
  mp_model_use_reference_kernels(MP_EXAMPLE_REFERENCE_KERNELS);
  for (uint32_t run = 1; run <= MP_EXAMPLE_RUNS; ++run) {
    st = mp_model_invoke(mp_example_input, output);
    if (st != MP_MODEL_OK) fail(st);
    put("run ");
    put_u32(run);
    put(" cycles ");
    put_u32(mp_model_cycles());
    put(" us ");
    put_u32(mp_model_cycles() / (board_clock_hz / 1000000u));
    put("\r\n");
  }
#if MP_MODEL_OUTPUT_INT8
  put("output ");
  for (uint32_t i = 0; i < MP_MODEL_OUTPUT_BYTES; ++i) {
    if (i != 0u) put(",");
    put_i32((int8_t)output[i]);
  }
  put("\r\n");
#endif
  put("output-hex ");
  for (uint32_t i = 0; i < MP_MODEL_OUTPUT_BYTES; ++i) put_hex8(output[i]);
  put("\r\nlayers ");
  for (uint32_t i = 0; i < mp_model_layers(); ++i) {
    if (i != 0u) put(",");
    put_u32(mp_model_layer_cycles(i));
  }
  put("\r\ndone\r\n");
  idle();
  return 0;
}
