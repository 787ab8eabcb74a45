/* NUCLEO-F746ZG: STM32F746ZG (Cortex-M7 r0p1) at 216 MHz. Facts: RM0385, the CMSIS device
 * header stm32f746xx.h, UM1974. Identity and numbers must match bench_firmware/boards.py
 * (tests/unit/test_boards.py); the clock, UART and pins are shared with the F767 in
 * stm32f7/stm32f7_nucleo144.c. */
#include <stdint.h>

#include "mmio.h"
#include "mp_board.h"
#include "stm32f7_nucleo144.h"

#define BOARD_CLOCK_HZ 216000000u
#define BOARD_FLASH_WAIT_STATES 7u /* RM0385, flash read latency table: 210-216 MHz, 2.7-3.6 V */
MP_BOARD_STATIC_ASSERT(BOARD_CLOCK_HZ == STM32F7_SYSCLK_HZ, clock);

const char board_name[] = "nucleo-f746zg";
const uint16_t board_code = 2;
const uint32_t board_clock_hz = BOARD_CLOCK_HZ;

void board_init(void) { stm32f7_nucleo144_init(BOARD_FLASH_WAIT_STATES); }
