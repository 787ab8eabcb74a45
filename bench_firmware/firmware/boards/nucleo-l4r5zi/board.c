/* NUCLEO-L4R5ZI: STM32L4R5ZI (Cortex-M4F) at 120 MHz. Facts: RM0432, the CMSIS device header
 * stm32l4r5xx.h, UM2179. Identity and numbers must match bench_firmware/boards.py
 * (tests/unit/test_boards.py). */
#include <stdint.h>

#include "cortex_m.h"
#include "mp_board.h"
#include "stm32_gpio.h"
#include "stm32l4_regs.h"

#define BOARD_CLOCK_HZ 120000000u
/* RM0432, flash wait states vs HCLK table, range 1 boost: 5 WS up to 120 MHz (the ST LL
 * table; Mbed uses 4). */
#define BOARD_FLASH_WAIT_STATES 5u

const char board_name[] = "nucleo-l4r5zi";
const uint16_t board_code = 4;
const uint32_t board_clock_hz = BOARD_CLOCK_HZ;

/* PLL from HSI16 (the ST-LINK MCO is not wired to OSC_IN by default): VCO in = 16 / M = 8 MHz,
 * VCO = 240 MHz, SYSCLK = PLLCLK (R output) = 120 MHz (RM0432 §6.4.4). */
#define HSI_HZ 16000000u
#define PLL_M 2u
#define PLL_N 30u
#define PLL_R 2u
MP_BOARD_STATIC_ASSERT(HSI_HZ / PLL_M * PLL_N / PLL_R == BOARD_CLOCK_HZ, pll);

/* LPUART1's kernel clock is HSI16, so its divider does not depend on the system clock:
 * BRR = 256 * fck / baud (RM0432 "LPUART baud rate generation"), 20 bits and >= 0x300. */
#define UART_BAUD 115200u
#define UART_BRR ((256u * HSI_HZ + UART_BAUD / 2u) / UART_BAUD) /* 35556 */
MP_BOARD_STATIC_ASSERT(UART_BRR >= 0x300u && UART_BRR < (1u << 20), lpuart_brr);

/* ST-LINK virtual COM port: LPUART1 on PG7 (TX) / PG8 (RX), AF8 (UM2179, "virtual COM port");
 * port G is powered from VDDIO2. */
#define UART LPUART1_BASE
#define UART_PORT GPIOG_BASE
#define UART_TX_PIN 7u
#define UART_RX_PIN 8u
#define UART_AF 8u
/* D7 on the Arduino (ST Zio) header: PF13 (UM2179). */
#define TIMESTAMP_PORT GPIOF_BASE
#define TIMESTAMP_PIN 13u

/* The AHB /2 step must last at least 1 µs (RM0432, "Dynamic voltage scaling management"):
 * 64 iterations of >= 4 cycles at <= 60 MHz take > 4 µs. */
#define AHB_DIV2_HOLD_LOOPS 64u

/* RM0432 PWR chapter, "Dynamic voltage scaling management", range 1 normal → range 1 boost: AHB /2,
 * clear R1MODE, wait states, switch to the PLL, wait 1 µs, AHB /1. */
static void clock_init(void) {
  RCC_APB1ENR1 |= RCC_APB1ENR1_PWREN;
  (void)RCC_APB1ENR1; /* the PWR clock is on after one read-back */

  MMIO_SET_FIELD(PWR_CR1, PWR_CR1_VOS_SHIFT, 3u, PWR_CR1_VOS_RANGE1);
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_HPRE_SHIFT, 0xFu, RCC_CFGR_HPRE_DIV2);
  PWR_CR5 &= ~PWR_CR5_R1MODE;
  while (PWR_SR2 & PWR_SR2_VOSF) {
  }

  /* Wait states first; reset the caches while they are off, then prefetch + caches on. */
  FLASH_ACR = BOARD_FLASH_WAIT_STATES;
  (void)FLASH_ACR;
  FLASH_ACR |= FLASH_ACR_ICRST | FLASH_ACR_DCRST;
  FLASH_ACR &= ~(FLASH_ACR_ICRST | FLASH_ACR_DCRST);
  FLASH_ACR |= FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;

  RCC_CR |= RCC_CR_HSION;
  while (!(RCC_CR & RCC_CR_HSIRDY)) {
  }
  RCC_PLLCFGR = RCC_PLLCFGR_SRC_HSI16 | ((PLL_M - 1u) << RCC_PLLCFGR_M_SHIFT) |
                (PLL_N << RCC_PLLCFGR_N_SHIFT) | ((PLL_R / 2u - 1u) << RCC_PLLCFGR_R_SHIFT) |
                RCC_PLLCFGR_REN;
  RCC_CR |= RCC_CR_PLLON;
  while (!(RCC_CR & RCC_CR_PLLRDY)) {
  }

  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_PPRE1_SHIFT, 7u, 0u); /* APB1 /1: 120 MHz */
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_PPRE2_SHIFT, 7u, 0u); /* APB2 /1: 120 MHz */
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_SW_SHIFT, 3u, RCC_CFGR_SW_PLL);
  while (((RCC_CFGR >> RCC_CFGR_SWS_SHIFT) & 3u) != RCC_CFGR_SW_PLL) {
  }
  for (volatile uint32_t i = 0; i < AHB_DIV2_HOLD_LOOPS; ++i) {
  }
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_HPRE_SHIFT, 0xFu, RCC_CFGR_HPRE_DIV1);
}

static void uart_init(void) {
  PWR_CR2 |= PWR_CR2_IOSV; /* VDDIO2 valid, or port G stays unpowered */
  RCC_AHB2ENR |= RCC_AHB2ENR_GPIOGEN;
  RCC_APB1ENR2 |= RCC_APB1ENR2_LPUART1EN;
  (void)RCC_APB1ENR2;
  MMIO_SET_FIELD(RCC_CCIPR, RCC_CCIPR_LPUART1SEL_SHIFT, 3u, RCC_CCIPR_LPUART1SEL_HSI16);
  gpio_set_af(UART_PORT, UART_TX_PIN, UART_AF);
  gpio_set_af(UART_PORT, UART_RX_PIN, UART_AF);
  LPUART_BRR(UART) = UART_BRR;
  /* Overrun detection off: a missed byte must not stall reception. */
  LPUART_CR3(UART) = LPUART_CR3_OVRDIS;
  LPUART_CR1(UART) = LPUART_CR1_UE | LPUART_CR1_TE | LPUART_CR1_RE; /* 8N1, polled */
}

static void timestamp_pin_init(void) {
  RCC_AHB2ENR |= RCC_AHB2ENR_GPIOFEN;
  (void)RCC_AHB2ENR;
  gpio_write(TIMESTAMP_PORT, TIMESTAMP_PIN, 1);
  gpio_set_push_pull(TIMESTAMP_PORT, TIMESTAMP_PIN);
  gpio_set_mode(TIMESTAMP_PORT, TIMESTAMP_PIN, GPIO_MODE_OUTPUT); /* from analog (reset) */
}

void board_init(void) {
  clock_init();
  uart_init();
  timestamp_pin_init();
  cortex_m_cycle_counter_start(0);
}

void board_uart_write(const char *s, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    while (!(LPUART_ISR(UART) & LPUART_ISR_TXE)) {
    }
    LPUART_TDR(UART) = (uint8_t)s[i];
  }
}

int board_uart_getc(void) {
  while (!(LPUART_ISR(UART) & LPUART_ISR_RXNE)) {
  }
  return (int)(LPUART_RDR(UART) & 0xFFu);
}

void board_timestamp_pin(int level) { gpio_write(TIMESTAMP_PORT, TIMESTAMP_PIN, level); }
