/* board_cycles() and board_micros() from the DWT cycle counter, for every Cortex-M board. */
#include <stdint.h>

#include "cortex_m.h"
#include "mp_board.h"

/* CYCCNT is 32 bits and wraps (after ~23.9 s at 180 MHz); board_micros() folds every delta
 * into whole microseconds and the cycles left over, so it stays right as long as it is called
 * once per wrap. 32-bit division only: a 64-bit count would pull libgcc's 700-byte 64-bit
 * divide into the image. */
static uint32_t elapsed_micros, leftover_cycles;
static uint32_t last_cyccnt;

void cortex_m_cycle_counter_start(int unlock_lar) {
  DEMCR |= DEMCR_TRCENA;
  if (unlock_lar) {
    DWT_LAR = DWT_LAR_KEY;
  }
  DWT_CYCCNT = 0u;
  DWT_CTRL |= DWT_CTRL_CYCCNTENA;
  elapsed_micros = 0u;
  leftover_cycles = 0u;
  last_cyccnt = 0u;
}

uint32_t board_cycles(void) { return DWT_CYCCNT; }

uint32_t board_micros(void) {
  const uint32_t now = DWT_CYCCNT, delta = now - last_cyccnt;
  last_cyccnt = now;
  /* Every board clock is a whole number of MHz (boards.py). */
  const uint32_t per_us = board_clock_hz / 1000000u;
  elapsed_micros += delta / per_us;
  leftover_cycles += delta % per_us;
  if (leftover_cycles >= per_us) {
    leftover_cycles -= per_us;
    ++elapsed_micros;
  }
  return elapsed_micros;
}
