/* NUCLEO-F767ZI: STM32F767ZI (Cortex-M7 r1p0, double-precision FPU) at 216 MHz. Facts:
 * RM0410, the CMSIS device header stm32f767xx.h, UM1974. Identity and numbers must match
 * bench_firmware/boards.py (tests/unit/test_boards.py); the clock, UART and pins are shared
 * with the F746 in stm32f7/stm32f7_nucleo144.c.
 *
 * The model region (boards.py) assumes the factory single-bank flash (FLASH_OPTCR nDBANK,
 * bit 29, = 1; RM0410 flash organisation). The firmware only reads the region, so it runs
 * either way; the host side erases sectors by the single-bank table. */
#include <stdint.h>

#include "mmio.h"
#include "mp_board.h"
#include "stm32f7_nucleo144.h"

#define BOARD_CLOCK_HZ 216000000u
#define BOARD_FLASH_WAIT_STATES 7u /* RM0410, flash read latency table: 210-216 MHz, 2.7-3.6 V */
MP_BOARD_STATIC_ASSERT(BOARD_CLOCK_HZ == STM32F7_SYSCLK_HZ, clock);

const char board_name[] = "nucleo-f767zi";
const uint16_t board_code = 3;
const uint32_t board_clock_hz = BOARD_CLOCK_HZ;

void board_init(void) { stm32f7_nucleo144_init(BOARD_FLASH_WAIT_STATES); }
