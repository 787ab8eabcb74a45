/* NUCLEO-F446RE: STM32F446RE (Cortex-M4F r0p1) at 180 MHz. Facts: RM0390, the CMSIS device
 * header stm32f446xx.h, UM1724. Identity and numbers must match bench_firmware/boards.py
 * (tests/unit/test_boards.py). */
#include <stdint.h>

#include "cortex_m.h"
#include "mp_board.h"
#include "stm32_gpio.h"
#include "stm32f4_regs.h"

#define BOARD_CLOCK_HZ 180000000u
#define BOARD_FLASH_WAIT_STATES 5u /* RM0390, flash read latency table: 150-180 MHz, 2.7-3.6 V */

const char board_name[] = "nucleo-f446re";
const uint16_t board_code = 1;
const uint32_t board_clock_hz = BOARD_CLOCK_HZ;

/* PLL (RM0390 §6.3.2): VCO in = src / M = 1 MHz, VCO = 360 MHz, SYSCLK = VCO / P. The ST-LINK
 * drives 8 MHz into OSC_IN (HSE bypass); HSI16 is the fallback if that clock is missing. */
#define HSE_HZ 8000000u
#define HSI_HZ 16000000u
#define PLL_M_HSE 8u
#define PLL_M_HSI 16u
#define PLL_N 360u
#define PLL_P 2u
#define PLL_Q 8u /* 45 MHz: feeds nothing here; any value 2..15 */
#define PLL_R 2u /* feeds nothing here; reset value */
#define HSE_START_TRIES 200000u /* ~30 ms of polling at 16 MHz; HSE bypass is ready in µs */
MP_BOARD_STATIC_ASSERT(HSE_HZ / PLL_M_HSE * PLL_N / PLL_P == BOARD_CLOCK_HZ, pll_hse);
MP_BOARD_STATIC_ASSERT(HSI_HZ / PLL_M_HSI * PLL_N / PLL_P == BOARD_CLOCK_HZ, pll_hsi);

/* AHB /1, APB1 /4 (45 MHz max), APB2 /2 (90 MHz max): RM0390 RCC chapter, clock tree limits. */
#define APB1_HZ (BOARD_CLOCK_HZ / 4u)
#define UART_BAUD 115200u
#define UART_BRR ((APB1_HZ + UART_BAUD / 2u) / UART_BAUD) /* OVER8 = 0: 391 at 45 MHz */

/* ST-LINK virtual COM port: USART2 on PA2 (TX) / PA3 (RX), AF7 (UM1724, "USART communication"). */
#define UART USART2_BASE
#define UART_PORT GPIOA_BASE
#define UART_TX_PIN 2u
#define UART_RX_PIN 3u
#define UART_AF 7u
/* D7 on the Arduino header: PA8 (UM1724, Arduino connector pinout). */
#define TIMESTAMP_PORT GPIOA_BASE
#define TIMESTAMP_PIN 8u

static int hse_bypass_start(void) {
  RCC_CR |= RCC_CR_HSEBYP;
  RCC_CR |= RCC_CR_HSEON;
  for (uint32_t i = 0; i < HSE_START_TRIES; ++i) {
    if (RCC_CR & RCC_CR_HSERDY) {
      return 1;
    }
  }
  RCC_CR &= ~(RCC_CR_HSEON | RCC_CR_HSEBYP);
  return 0;
}

/* RM0390 PWR chapter, "Entering Over-drive mode": PLL on, ODEN / ODRDY, ODSWEN / ODSWRDY, then the
 * flash latency and the switch to the PLL. */
static void clock_init(void) {
  RCC_APB1ENR |= RCC_APB1ENR_PWREN;
  (void)RCC_APB1ENR; /* the PWR clock is on after one read-back */
  MMIO_SET_FIELD(PWR_CR, PWR_CR_VOS_SHIFT, 3u, PWR_CR_VOS_SCALE1); /* only while PLL is off */

  RCC_CR |= RCC_CR_HSION;
  while (!(RCC_CR & RCC_CR_HSIRDY)) {
  }
  int hse = hse_bypass_start();
  RCC_PLLCFGR = ((hse ? PLL_M_HSE : PLL_M_HSI) << RCC_PLLCFGR_M_SHIFT) |
                (PLL_N << RCC_PLLCFGR_N_SHIFT) | ((PLL_P / 2u - 1u) << RCC_PLLCFGR_P_SHIFT) |
                (hse ? RCC_PLLCFGR_SRC_HSE : 0u) | (PLL_Q << RCC_PLLCFGR_Q_SHIFT) |
                (PLL_R << RCC_PLLCFGR_R_SHIFT);
  RCC_CR |= RCC_CR_PLLON;

  PWR_CR |= PWR_CR_ODEN;
  while (!(PWR_CSR & PWR_CSR_ODRDY)) {
  }
  PWR_CR |= PWR_CR_ODSWEN;
  while (!(PWR_CSR & PWR_CSR_ODSWRDY)) {
  }

  /* Wait states before the clock goes up (RM0390, "Increasing the CPU frequency"); reset the
   * caches while they are still off, then prefetch + instruction cache + data cache on. */
  FLASH_ACR = BOARD_FLASH_WAIT_STATES;
  (void)FLASH_ACR;
  FLASH_ACR |= FLASH_ACR_ICRST | FLASH_ACR_DCRST;
  FLASH_ACR &= ~(FLASH_ACR_ICRST | FLASH_ACR_DCRST);
  FLASH_ACR |= FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;

  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_HPRE_SHIFT, 0xFu, 0u);
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_PPRE1_SHIFT, 7u, RCC_CFGR_PPRE_DIV4);
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_PPRE2_SHIFT, 7u, RCC_CFGR_PPRE_DIV2);

  while (!(RCC_CR & RCC_CR_PLLRDY)) {
  }
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_SW_SHIFT, 3u, RCC_CFGR_SW_PLL_P);
  while (((RCC_CFGR >> RCC_CFGR_SWS_SHIFT) & 3u) != RCC_CFGR_SW_PLL_P) {
  }
}

static void uart_init(void) {
  RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
  RCC_APB1ENR |= RCC_APB1ENR_USART2EN;
  (void)RCC_APB1ENR;
  gpio_set_af(UART_PORT, UART_TX_PIN, UART_AF);
  gpio_set_af(UART_PORT, UART_RX_PIN, UART_AF);
  USART_BRR(UART) = UART_BRR;
  USART_CR1(UART) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE; /* 8N1, polled */
}

static void timestamp_pin_init(void) {
  RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
  (void)RCC_AHB1ENR;
  gpio_write(TIMESTAMP_PORT, TIMESTAMP_PIN, 1);
  gpio_set_push_pull(TIMESTAMP_PORT, TIMESTAMP_PIN);
  gpio_set_mode(TIMESTAMP_PORT, TIMESTAMP_PIN, GPIO_MODE_OUTPUT);
}

void board_init(void) {
  /* Cortex-M4 r0p1 erratum 838869 (Arm Cortex-M4 Software Developers Errata Notice; ST's
   * STM32F446 errata sheet): disable the write buffer for default memory map
   * accesses. The erratum needs an exception return, which this firmware never takes during a
   * run, but we follow the documented workaround on the real part. */
  SCB_ACTLR |= SCB_ACTLR_DISDEFWBUF;
  clock_init();
  uart_init();
  timestamp_pin_init();
  cortex_m_cycle_counter_start(0);
}

void board_uart_write(const char *s, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    while (!(USART_SR(UART) & USART_SR_TXE)) {
    }
    USART_DR(UART) = (uint8_t)s[i];
  }
}

int board_uart_getc(void) {
  /* Reading SR then DR also clears an overrun (RM0390 §25.6.1, USART_SR). */
  while (!(USART_SR(UART) & USART_SR_RXNE)) {
  }
  return (int)(USART_DR(UART) & 0xFFu);
}

void board_timestamp_pin(int level) { gpio_write(TIMESTAMP_PORT, TIMESTAMP_PIN, level); }
