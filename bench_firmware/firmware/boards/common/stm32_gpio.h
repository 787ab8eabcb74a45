/* STM32 GPIO ports: the register layout is the same on the F4, F7 and L4+ parts
 * (RM0390 §7.4, RM0385 §6.4, RM0410 §6.4, RM0432 §8.5 "GPIO registers"). */
#ifndef MP_STM32_GPIO_H
#define MP_STM32_GPIO_H

#include <stdint.h>

#include "mmio.h"

#define GPIO_MODER(port) MMIO32((port) + 0x00u)
#define GPIO_OTYPER(port) MMIO32((port) + 0x04u)
#define GPIO_OSPEEDR(port) MMIO32((port) + 0x08u)
#define GPIO_PUPDR(port) MMIO32((port) + 0x0Cu)
#define GPIO_BSRR(port) MMIO32((port) + 0x18u)
#define GPIO_AFRL(port) MMIO32((port) + 0x20u)
#define GPIO_AFRH(port) MMIO32((port) + 0x24u)

/* MODER: two bits a pin. The L4+ resets its pins to analog (11), so always clear both. */
#define GPIO_MODE_OUTPUT 1u
#define GPIO_MODE_AF 2u

static inline void gpio_set_mode(uint32_t port, unsigned pin, uint32_t mode) {
  MMIO_SET_FIELD(GPIO_MODER(port), 2u * pin, 3u, mode);
}

/* Push-pull (OTYPER bit 0), for a pin that drives a line. */
static inline void gpio_set_push_pull(uint32_t port, unsigned pin) {
  GPIO_OTYPER(port) &= ~(1u << pin);
}

/* AFRL holds pins 0-7, AFRH pins 8-15, four bits each. */
static inline void gpio_set_af(uint32_t port, unsigned pin, uint32_t af) {
  if (pin < 8u) {
    MMIO_SET_FIELD(GPIO_AFRL(port), 4u * pin, 0xFu, af);
  } else {
    MMIO_SET_FIELD(GPIO_AFRH(port), 4u * (pin - 8u), 0xFu, af);
  }
  gpio_set_mode(port, pin, GPIO_MODE_AF);
}

/* BSRR: writing bit n sets pin n, bit n+16 resets it, atomically. */
static inline void gpio_write(uint32_t port, unsigned pin, int level) {
  GPIO_BSRR(port) = level ? (1u << pin) : (1u << (pin + 16u));
}

#endif /* MP_STM32_GPIO_H */
