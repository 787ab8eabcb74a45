/* What the two STM32F7 Nucleo-144 boards (NUCLEO-F746ZG, NUCLEO-F767ZI) share: the clock tree
 * at 216 MHz, the ST-LINK VCP on USART3 (PD8 / PD9), D7 = PF13, the caches. Each board's
 * board.c keeps its identity and calls stm32f7_nucleo144_init(). */
#ifndef MP_STM32F7_NUCLEO144_H
#define MP_STM32F7_NUCLEO144_H

#include <stdint.h>

#define STM32F7_SYSCLK_HZ 216000000u

/* Everything board_init() promises (mp_board.h), with `flash_wait_states` for 216 MHz. */
void stm32f7_nucleo144_init(uint32_t flash_wait_states);

#endif /* MP_STM32F7_NUCLEO144_H */
