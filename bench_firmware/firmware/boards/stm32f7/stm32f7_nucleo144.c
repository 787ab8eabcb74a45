/* Board support shared by NUCLEO-F746ZG and NUCLEO-F767ZI. Facts: RM0385 / RM0410 (same
 * registers and bits for everything used here), UM1974 (Nucleo-144). */
/* Off the hot path of the networks mcuprof measures: compiled for size, which keeps the
 * firmware inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#pragma GCC optimize("Os")
#include <stdint.h>

#include "cortex_m.h"
#include "cortex_m7_cache.h"
#include "mp_board.h"
#include "stm32_gpio.h"
#include "stm32f7_nucleo144.h"
#include "stm32f7_regs.h"

/* PLL (RM0385 §5.3.2): VCO in = src / M = 2 MHz, VCO = 432 MHz, SYSCLK = VCO / P = 216 MHz,
 * PLL48CK = VCO / Q = 48 MHz. The ST-LINK drives 8 MHz into OSC_IN (HSE bypass); HSI16 is the
 * fallback if that clock is missing. */
#define HSE_HZ 8000000u
#define HSI_HZ 16000000u
#define PLL_M_HSE 4u
#define PLL_M_HSI 8u
#define PLL_N 216u
#define PLL_P 2u
#define PLL_Q 9u
#define PLL_R 2u /* PLLR's reset value; feeds nothing here */
#define HSE_START_TRIES 200000u /* ~30 ms of polling at 16 MHz; HSE bypass is ready in µs */
MP_BOARD_STATIC_ASSERT(HSE_HZ / PLL_M_HSE * PLL_N / PLL_P == STM32F7_SYSCLK_HZ, pll_hse);
MP_BOARD_STATIC_ASSERT(HSI_HZ / PLL_M_HSI * PLL_N / PLL_P == STM32F7_SYSCLK_HZ, pll_hsi);

/* AHB /1, APB1 /4 (54 MHz max), APB2 /2 (108 MHz max): RM0385 RCC chapter, clock tree limits. */
#define APB1_HZ (STM32F7_SYSCLK_HZ / 4u)
#define UART_BAUD 115200u
#define UART_BRR ((APB1_HZ + UART_BAUD / 2u) / UART_BAUD) /* OVER8 = 0: 469 at 54 MHz */

/* ST-LINK virtual COM port: USART3 on PD8 (TX) / PD9 (RX), AF7 (UM1974, "USART3"). */
#define UART USART3_BASE
#define UART_PORT GPIOD_BASE
#define UART_TX_PIN 8u
#define UART_RX_PIN 9u
#define UART_AF 7u
/* D7 on the Arduino (ST Zio) header: PF13 (UM1974). */
#define TIMESTAMP_PORT GPIOF_BASE
#define TIMESTAMP_PIN 13u

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

/* RM0385 PWR chapter, "Entering Over-drive mode": PLL on, ODEN / ODRDY, ODSWEN / ODSWRDY, then the
 * flash latency and the switch to the PLL. */
static void clock_init(uint32_t flash_wait_states) {
  RCC_APB1ENR |= RCC_APB1ENR_PWREN;
  (void)RCC_APB1ENR; /* the PWR clock is on after one read-back */
  MMIO_SET_FIELD(PWR_CR1, PWR_CR1_VOS_SHIFT, 3u, PWR_CR1_VOS_SCALE1); /* only while PLL is off */

  RCC_CR |= RCC_CR_HSION;
  while (!(RCC_CR & RCC_CR_HSIRDY)) {
  }
  int hse = hse_bypass_start();
  RCC_PLLCFGR = ((hse ? PLL_M_HSE : PLL_M_HSI) << RCC_PLLCFGR_M_SHIFT) |
                (PLL_N << RCC_PLLCFGR_N_SHIFT) | ((PLL_P / 2u - 1u) << RCC_PLLCFGR_P_SHIFT) |
                (hse ? RCC_PLLCFGR_SRC_HSE : 0u) | (PLL_Q << RCC_PLLCFGR_Q_SHIFT) |
                (PLL_R << RCC_PLLCFGR_R_SHIFT);
  RCC_CR |= RCC_CR_PLLON;

  PWR_CR1 |= PWR_CR1_ODEN;
  while (!(PWR_CSR1 & PWR_CSR1_ODRDY)) {
  }
  PWR_CR1 |= PWR_CR1_ODSWEN;
  while (!(PWR_CSR1 & PWR_CSR1_ODSWRDY)) {
  }

  /* Wait states before the clock goes up (RM0385, "Increasing the CPU frequency"); reset the
   * ART while it is off, then ART + prefetch on. Code runs from the AXIM alias (0x08000000),
   * which the L1 I-cache serves; the ART serves the ITCM alias (0x00200000). */
  FLASH_ACR = flash_wait_states;
  (void)FLASH_ACR;
  FLASH_ACR |= FLASH_ACR_ARTRST;
  FLASH_ACR &= ~FLASH_ACR_ARTRST;
  FLASH_ACR |= FLASH_ACR_ARTEN | FLASH_ACR_PRFTEN;

  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_HPRE_SHIFT, 0xFu, 0u);
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_PPRE1_SHIFT, 7u, RCC_CFGR_PPRE_DIV4);
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_PPRE2_SHIFT, 7u, RCC_CFGR_PPRE_DIV2);

  while (!(RCC_CR & RCC_CR_PLLRDY)) {
  }
  MMIO_SET_FIELD(RCC_CFGR, RCC_CFGR_SW_SHIFT, 3u, RCC_CFGR_SW_PLL);
  while (((RCC_CFGR >> RCC_CFGR_SWS_SHIFT) & 3u) != RCC_CFGR_SW_PLL) {
  }
}

static void uart_init(void) {
  RCC_AHB1ENR |= RCC_AHB1ENR_GPIODEN;
  RCC_APB1ENR |= RCC_APB1ENR_USART3EN;
  (void)RCC_APB1ENR;
  MMIO_SET_FIELD(RCC_DCKCFGR2, RCC_DCKCFGR2_USART3SEL_SHIFT, 3u, 0u); /* kernel clock = PCLK1 */
  gpio_set_af(UART_PORT, UART_TX_PIN, UART_AF);
  gpio_set_af(UART_PORT, UART_RX_PIN, UART_AF);
  USART_BRR(UART) = UART_BRR;
  /* Overrun detection off: a missed byte must not stall reception (RM0385 §31.8.3, USART_CR3). */
  USART_CR3(UART) = USART_CR3_OVRDIS;
  USART_CR1(UART) = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE; /* 8N1, polled */
}

static void timestamp_pin_init(void) {
  RCC_AHB1ENR |= RCC_AHB1ENR_GPIOFEN;
  (void)RCC_AHB1ENR;
  gpio_write(TIMESTAMP_PORT, TIMESTAMP_PIN, 1);
  gpio_set_push_pull(TIMESTAMP_PORT, TIMESTAMP_PIN);
  gpio_set_mode(TIMESTAMP_PORT, TIMESTAMP_PIN, GPIO_MODE_OUTPUT);
}

void stm32f7_nucleo144_init(uint32_t flash_wait_states) {
  clock_init(flash_wait_states);
  cortex_m7_caches_enable();
  uart_init();
  timestamp_pin_init();
  cortex_m_cycle_counter_start(1); /* the M7's DWT is locked until LAR is written */
}

void board_uart_write(const char *s, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    while (!(USART_ISR(UART) & USART_ISR_TXE)) {
    }
    USART_TDR(UART) = (uint8_t)s[i];
  }
}

int board_uart_getc(void) {
  while (!(USART_ISR(UART) & USART_ISR_RXNE)) {
  }
  return (int)(USART_RDR(UART) & 0xFFu);
}

void board_timestamp_pin(int level) { gpio_write(TIMESTAMP_PORT, TIMESTAMP_PIN, level); }
