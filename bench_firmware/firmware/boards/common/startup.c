/* Reset and fault entry for every board: the vector table, the C runtime set-up, main().
 *
 * Only the 16 system exception vectors exist (ARMv7-M ARM, "The vector table"): the
 * firmware never enables an interrupt, so no IRQ vector can be taken. Faults escalate to
 * HardFault (SHCSR leaves MemManage / BusFault / UsageFault disabled) and print an error line
 * in the serial protocol's error form before halting. */
#include <stdint.h>

#include "cortex_m.h"
#include "mp_board.h"

/* From common/sections.ld. */
extern uint32_t _sidata[];
extern uint32_t _sdata[];
extern uint32_t _edata[];
extern uint32_t _sbss[];
extern uint32_t _ebss[];
extern uint32_t __stack_top[];

int main(void);
void reset_handler(void);
void mp_fault_handler(void);
void mp_unexpected_handler(void);

typedef void (*mp_vector_t)(void);

__attribute__((section(".isr_vector"), used)) const mp_vector_t mp_vectors[16] = {
    (mp_vector_t)(uintptr_t)__stack_top, /* initial SP: the top of FIRMWARE_RAM_RESERVE */
    reset_handler,
    mp_fault_handler, /* NMI */
    mp_fault_handler, /* HardFault */
    mp_fault_handler, /* MemManage */
    mp_fault_handler, /* BusFault */
    mp_fault_handler, /* UsageFault */
    0,
    0,
    0,
    0,
    mp_unexpected_handler, /* SVCall */
    mp_unexpected_handler, /* DebugMonitor */
    0,
    mp_unexpected_handler, /* PendSV */
    mp_unexpected_handler, /* SysTick: never enabled */
};

void reset_handler(void) {
  /* The FPU first, before any code that may touch a floating-point register (ARMv7-M ARM
   * §B3.2.20: CP10 and CP11 full access, then DSB + ISB so the next instruction sees it). */
  SCB_CPACR |= SCB_CPACR_CP10_CP11_FULL;
  cortex_m_dsb();
  cortex_m_isb();

  /* A debugger may start us from another image; point VTOR at our own table. */
  SCB_VTOR = (uint32_t)(uintptr_t)mp_vectors;

  for (uint32_t *src = _sidata, *dst = _sdata; dst < _edata;) {
    *dst++ = *src++;
  }
  for (uint32_t *dst = _sbss; dst < _ebss;) {
    *dst++ = 0u;
  }

  (void)main();
  for (;;) {
  }
}

void mp_fault_handler(void) {
  static const char msg[] = "e-[hard fault]\r\n";
  board_uart_write(msg, (uint32_t)(sizeof msg - 1u));
  for (;;) {
  }
}

void mp_unexpected_handler(void) {
  static const char msg[] = "e-[unexpected exception]\r\n";
  board_uart_write(msg, (uint32_t)(sizeof msg - 1u));
  for (;;) {
  }
}
