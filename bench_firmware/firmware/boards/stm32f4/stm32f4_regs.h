/* STM32F446 registers this firmware touches, from RM0390 (STM32F446xx reference manual);
 * addresses from §2.2.2 "Memory map and register boundary addresses". */
#ifndef MP_STM32F4_REGS_H
#define MP_STM32F4_REGS_H

#include "mmio.h"

/* §6.3 RCC registers. */
#define RCC_BASE 0x40023800u
#define RCC_CR MMIO32(RCC_BASE + 0x00u) /* §6.3.1 */
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR MMIO32(RCC_BASE + 0x04u) /* §6.3.2 */
#define RCC_PLLCFGR_M_SHIFT 0u               /* [5:0] */
#define RCC_PLLCFGR_N_SHIFT 6u               /* [14:6] */
#define RCC_PLLCFGR_P_SHIFT 16u              /* [17:16], P/2 - 1 */
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_PLLCFGR_Q_SHIFT 24u /* [27:24] */
#define RCC_PLLCFGR_R_SHIFT 28u /* [30:28] */
#define RCC_CFGR MMIO32(RCC_BASE + 0x08u) /* §6.3.3 */
#define RCC_CFGR_SW_SHIFT 0u              /* [1:0] */
#define RCC_CFGR_SWS_SHIFT 2u             /* [3:2] */
#define RCC_CFGR_SW_PLL_P 2u
#define RCC_CFGR_HPRE_SHIFT 4u  /* [7:4]; 0xxx = /1 */
#define RCC_CFGR_PPRE1_SHIFT 10u /* [12:10] */
#define RCC_CFGR_PPRE2_SHIFT 13u /* [15:13] */
#define RCC_CFGR_PPRE_DIV2 4u
#define RCC_CFGR_PPRE_DIV4 5u
#define RCC_AHB1ENR MMIO32(RCC_BASE + 0x30u) /* §6.3.10 */
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB1ENR MMIO32(RCC_BASE + 0x40u) /* §6.3.13 */
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB1ENR_PWREN (1u << 28)

/* §5.4 PWR registers. */
#define PWR_BASE 0x40007000u
#define PWR_CR MMIO32(PWR_BASE + 0x00u) /* §5.4.1 */
#define PWR_CR_VOS_SHIFT 14u            /* [15:14]; 11 = scale 1 */
#define PWR_CR_VOS_SCALE1 3u
#define PWR_CR_ODEN (1u << 16)
#define PWR_CR_ODSWEN (1u << 17)
#define PWR_CSR MMIO32(PWR_BASE + 0x04u) /* §5.4.2 */
#define PWR_CSR_ODRDY (1u << 16)
#define PWR_CSR_ODSWRDY (1u << 17)

/* §3.8.1 FLASH_ACR. */
#define FLASH_ACR MMIO32(0x40023C00u)
#define FLASH_ACR_LATENCY_MASK 0xFu /* [3:0] */
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)
#define FLASH_ACR_ICRST (1u << 11)
#define FLASH_ACR_DCRST (1u << 12)

/* §7.4 GPIO ports (layout in common/stm32_gpio.h). */
#define GPIOA_BASE 0x40020000u

/* §25.6 USART registers (the F4 layout: SR / DR / BRR / CR1). */
#define USART2_BASE 0x40004400u
#define USART_SR(base) MMIO32((base) + 0x00u)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_DR(base) MMIO32((base) + 0x04u)
#define USART_BRR(base) MMIO32((base) + 0x08u)
#define USART_CR1(base) MMIO32((base) + 0x0Cu)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_UE (1u << 13)

#endif /* MP_STM32F4_REGS_H */
