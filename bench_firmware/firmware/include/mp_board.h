/* The board support interface: what the runtime and the protocol need from a board.
 * Implemented once per board in boards/<name>/board.c (register-level, no vendor HAL) and
 * once for the host build in host/board_host.c.
 *
 * Lifecycle: board_init() once at reset; then everything else. No interrupts are enabled,
 * ever: the UART is polled, so nothing disturbs a measurement. */
#ifndef MP_BOARD_H
#define MP_BOARD_H

#include <stdint.h>

/* Clocks to the board's maximum, flash wait states, ART / caches on, the ST-LINK virtual COM
 * port UART at 115200 8N1, the timestamp GPIO as output (high), DWT CYCCNT running. */
void board_init(void);

/* Blocking write of n bytes to the UART. */
void board_uart_write(const char *s, uint32_t n);

/* Blocking read of one byte from the UART. Returns -1 on the host when input ended. */
int board_uart_getc(void);

/* DWT CYCCNT (0 on the host build: it has no cycle figures). */
uint32_t board_cycles(void);

/* Microseconds since board_init, for `timestamp%` and m-lap-us (derived from CYCCNT and the
 * core clock on a board). */
uint32_t board_micros(void);

/* Drive the timestamp GPIO (D7 on the Nucleo-144 / Nucleo-64 headers): energy monitors
 * watch its falling edge. */
void board_timestamp_pin(int level);

/* The model region in flash where the host writes the plan, and its size. */
const uint8_t *board_model_region(uint32_t *bytes);

/* The tensor arena in SRAM (a linker-placed block) and its size. */
uint8_t *board_arena(uint32_t *bytes);

/* Identity: the board's catalogue name (bench_firmware/boards.py), its plan code, its clock. */
extern const char board_name[];
extern const uint16_t board_code;
extern const uint32_t board_clock_hz;

#endif /* MP_BOARD_H */
