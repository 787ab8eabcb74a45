/* STM32L4R5 (STM32L4+) registers this firmware touches, from RM0432 (STM32L4+ reference
 * manual); addresses from §2.2.2 "Memory map and register boundary addresses". */
#ifndef MP_STM32L4_REGS_H
#define MP_STM32L4_REGS_H

#include "mmio.h"

/* §6.4 RCC registers. */
#define RCC_BASE 0x40021000u
#define RCC_CR MMIO32(RCC_BASE + 0x00u) /* §6.4.1 */
#define RCC_CR_HSION (1u << 8)
#define RCC_CR_HSIRDY (1u << 10)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CFGR MMIO32(RCC_BASE + 0x08u) /* §6.4.3 */
#define RCC_CFGR_SW_SHIFT 0u              /* [1:0] */
#define RCC_CFGR_SWS_SHIFT 2u             /* [3:2] */
#define RCC_CFGR_SW_PLL 3u
#define RCC_CFGR_HPRE_SHIFT 4u /* [7:4]; 0xxx = /1, 1000 = /2 */
#define RCC_CFGR_HPRE_DIV1 0u
#define RCC_CFGR_HPRE_DIV2 8u
#define RCC_CFGR_PPRE1_SHIFT 8u  /* [10:8]; 0xx = /1 */
#define RCC_CFGR_PPRE2_SHIFT 11u /* [13:11]; 0xx = /1 */
#define RCC_PLLCFGR MMIO32(RCC_BASE + 0x0Cu) /* §6.4.4 */
#define RCC_PLLCFGR_SRC_HSI16 2u             /* PLLSRC [1:0] */
#define RCC_PLLCFGR_M_SHIFT 4u               /* [7:4], M - 1 */
#define RCC_PLLCFGR_N_SHIFT 8u               /* [14:8] */
#define RCC_PLLCFGR_REN (1u << 24)
#define RCC_PLLCFGR_R_SHIFT 25u /* [26:25], R/2 - 1 */
#define RCC_AHB2ENR MMIO32(RCC_BASE + 0x4Cu) /* §6.4.17 */
#define RCC_AHB2ENR_GPIOFEN (1u << 5)
#define RCC_AHB2ENR_GPIOGEN (1u << 6)
#define RCC_APB1ENR1 MMIO32(RCC_BASE + 0x58u) /* §6.4.19 */
#define RCC_APB1ENR1_PWREN (1u << 28)
#define RCC_APB1ENR2 MMIO32(RCC_BASE + 0x5Cu) /* §6.4.20 */
#define RCC_APB1ENR2_LPUART1EN (1u << 0)
#define RCC_CCIPR MMIO32(RCC_BASE + 0x88u) /* §6.4.28 */
#define RCC_CCIPR_LPUART1SEL_SHIFT 10u     /* [11:10] */
#define RCC_CCIPR_LPUART1SEL_HSI16 2u

/* §5.4 PWR registers. */
#define PWR_BASE 0x40007000u
#define PWR_CR1 MMIO32(PWR_BASE + 0x00u) /* §5.4.1 */
#define PWR_CR1_VOS_SHIFT 9u             /* [10:9]; 01 = range 1 */
#define PWR_CR1_VOS_RANGE1 1u
#define PWR_CR2 MMIO32(PWR_BASE + 0x04u) /* §5.4.2 */
#define PWR_CR2_IOSV (1u << 9)           /* VDDIO2 valid: port G PG[15:2] usable */
#define PWR_SR2 MMIO32(PWR_BASE + 0x14u) /* §5.4.6 */
#define PWR_SR2_VOSF (1u << 10)
#define PWR_CR5 MMIO32(PWR_BASE + 0x80u) /* §5.4, PWR_CR5 (STM32L4+ only) */
#define PWR_CR5_R1MODE (1u << 8)         /* 0 = range 1 boost mode */

/* §3.7.1 FLASH_ACR. */
#define FLASH_ACR MMIO32(0x40022000u)
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)
#define FLASH_ACR_ICRST (1u << 11)
#define FLASH_ACR_DCRST (1u << 12)

/* §8.5 GPIO ports (layout in common/stm32_gpio.h), on AHB2. */
#define GPIOF_BASE 0x48001400u
#define GPIOG_BASE 0x48001800u

/* RM0432 "LPUART registers" (the same layout as the USART: CR1 / CR3 / BRR / ISR / RDR / TDR). */
#define LPUART1_BASE 0x40008000u
#define LPUART_CR1(base) MMIO32((base) + 0x00u)
#define LPUART_CR1_UE (1u << 0)
#define LPUART_CR1_RE (1u << 2)
#define LPUART_CR1_TE (1u << 3)
#define LPUART_CR3(base) MMIO32((base) + 0x08u)
#define LPUART_CR3_OVRDIS (1u << 12)
#define LPUART_BRR(base) MMIO32((base) + 0x0Cu)
#define LPUART_ISR(base) MMIO32((base) + 0x1Cu)
#define LPUART_ISR_RXNE (1u << 5)
#define LPUART_ISR_TXE (1u << 7)
#define LPUART_RDR(base) MMIO32((base) + 0x24u)
#define LPUART_TDR(base) MMIO32((base) + 0x28u)

#endif /* MP_STM32L4_REGS_H */
