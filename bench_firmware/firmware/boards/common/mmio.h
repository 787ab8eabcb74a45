/* Memory-mapped register access: the one macro every register definition uses. */
#ifndef MP_MMIO_H
#define MP_MMIO_H

#include <stdint.h>

#define MMIO32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Replace the field `mask << shift` of a register with `value`. */
#define MMIO_SET_FIELD(reg, shift, mask, value) \
  ((reg) = ((reg) & ~((uint32_t)(mask) << (shift))) | ((uint32_t)(value) << (shift)))

/* A compile-time check that works in C99 (no _Static_assert before C11). */
#define MP_BOARD_STATIC_ASSERT(cond, name) typedef char mp_board_assert_##name[(cond) ? 1 : -1]

#endif /* MP_MMIO_H */
