/* Cortex-M system registers shared by the M4 and M7 boards.
 * Addresses from the ARMv7-M Architecture Reference Manual (ARM DDI 0403E):
 * §B3.2 System Control Block, §C1.8 DWT; the lock access register from the CoreSight
 * architecture (ARM IHI 0029, "LAR") as the Cortex-M7 TRM (ARM DDI 0489) requires. */
#ifndef MP_CORTEX_M_H
#define MP_CORTEX_M_H

#include <stdint.h>

#include "mmio.h"

/* §B3.2.2: ACTLR, auxiliary control (IMPLEMENTATION DEFINED bits; Cortex-M4 TRM §4.3.1). */
#define SCB_ACTLR MMIO32(0xE000E008u)
#define SCB_ACTLR_DISDEFWBUF (1u << 1)

/* §B3.2.5: VTOR, vector table offset. */
#define SCB_VTOR MMIO32(0xE000ED08u)

/* §B3.2.8: CCR, configuration and control; IC / DC are the M7 L1 cache enables. */
#define SCB_CCR MMIO32(0xE000ED14u)
#define SCB_CCR_DC (1u << 16)
#define SCB_CCR_IC (1u << 17)

/* §B3.2.20: CPACR, coprocessor access; CP10 and CP11 (the FPU) are bits [23:20]. */
#define SCB_CPACR MMIO32(0xE000ED88u)
#define SCB_CPACR_CP10_CP11_FULL (0xFu << 20)

/* §C1.6.5: DEMCR, debug exception and monitor control; TRCENA powers the DWT. */
#define DEMCR MMIO32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)

/* §C1.8.7: DWT_CTRL, CYCCNTENA is bit 0; §C1.8.8: DWT_CYCCNT. */
#define DWT_CTRL MMIO32(0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT MMIO32(0xE0001004u)

/* CoreSight LAR / LSR of the DWT: the Cortex-M7 implements the software lock, and CYCCNT
 * stays 0 until 0xC5ACCE55 is written (Cortex-M7 TRM, DDI 0489, DWT chapter). */
#define DWT_LAR MMIO32(0xE0001FB0u)
#define DWT_LSR MMIO32(0xE0001FB4u)
#define DWT_LAR_KEY 0xC5ACCE55u

static inline void cortex_m_dsb(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
static inline void cortex_m_isb(void) { __asm__ volatile("isb 0xF" ::: "memory"); }

/* Start DWT CYCCNT from 0 (unlock_lar: the Cortex-M7 parts) and restart board_micros(). */
void cortex_m_cycle_counter_start(int unlock_lar);

#endif /* MP_CORTEX_M_H */
