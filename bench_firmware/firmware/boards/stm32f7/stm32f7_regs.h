/* STM32F746 / STM32F767 registers this firmware touches. The two parts share these
 * addresses and bits: RM0385 (STM32F75xxx/74xxx) and RM0410 (STM32F76xxx/77xxx), both with
 * the register maps in the same sections; addresses from §2.2.2 "Memory map". */
#ifndef MP_STM32F7_REGS_H
#define MP_STM32F7_REGS_H

#include "mmio.h"

/* §5.3 RCC registers. */
#define RCC_BASE 0x40023800u
#define RCC_CR MMIO32(RCC_BASE + 0x00u) /* §5.3.1 */
#define RCC_CR_HSION (1u << 0)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR MMIO32(RCC_BASE + 0x04u) /* §5.3.2 */
#define RCC_PLLCFGR_M_SHIFT 0u               /* [5:0] */
#define RCC_PLLCFGR_N_SHIFT 6u               /* [14:6] */
#define RCC_PLLCFGR_P_SHIFT 16u              /* [17:16], P/2 - 1 */
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_PLLCFGR_Q_SHIFT 24u /* [27:24] */
#define RCC_PLLCFGR_R_SHIFT 28u /* [30:28]: PLLR on the F767, reserved (reset 0x2) on the F746 */
#define RCC_CFGR MMIO32(RCC_BASE + 0x08u) /* §5.3.3 */
#define RCC_CFGR_SW_SHIFT 0u              /* [1:0] */
#define RCC_CFGR_SWS_SHIFT 2u             /* [3:2] */
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_HPRE_SHIFT 4u   /* [7:4]; 0xxx = /1 */
#define RCC_CFGR_PPRE1_SHIFT 10u /* [12:10] */
#define RCC_CFGR_PPRE2_SHIFT 13u /* [15:13] */
#define RCC_CFGR_PPRE_DIV2 4u
#define RCC_CFGR_PPRE_DIV4 5u
#define RCC_AHB1ENR MMIO32(RCC_BASE + 0x30u) /* §5.3.10 */
#define RCC_AHB1ENR_GPIODEN (1u << 3)
#define RCC_AHB1ENR_GPIOFEN (1u << 5)
#define RCC_APB1ENR MMIO32(RCC_BASE + 0x40u) /* §5.3.13 */
#define RCC_APB1ENR_USART3EN (1u << 18)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_DCKCFGR2 MMIO32(RCC_BASE + 0x90u) /* §5.3.26 */
#define RCC_DCKCFGR2_USART3SEL_SHIFT 4u       /* [5:4]; 00 = PCLK1 */

/* §4.4 PWR registers. */
#define PWR_BASE 0x40007000u
#define PWR_CR1 MMIO32(PWR_BASE + 0x00u) /* §4.4.1 */
#define PWR_CR1_VOS_SHIFT 14u            /* [15:14]; 11 = scale 1 */
#define PWR_CR1_VOS_SCALE1 3u
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1 MMIO32(PWR_BASE + 0x04u) /* §4.4.2 */
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* §3.7.1 FLASH_ACR: no ICEN/DCEN on the F7; the ART serves the ITCM path. */
#define FLASH_ACR MMIO32(0x40023C00u)
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)
#define FLASH_ACR_ARTRST (1u << 11)

/* §6.4 GPIO ports (layout in common/stm32_gpio.h). */
#define GPIOD_BASE 0x40020C00u
#define GPIOF_BASE 0x40021400u

/* USART registers, the F7 layout (RM0385 §31.8, RM0410 §34.8). */
#define USART3_BASE 0x40004800u
#define USART_CR1(base) MMIO32((base) + 0x00u)
#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR3(base) MMIO32((base) + 0x08u)
#define USART_CR3_OVRDIS (1u << 12)
#define USART_BRR(base) MMIO32((base) + 0x0Cu)
#define USART_ISR(base) MMIO32((base) + 0x1Cu)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TXE (1u << 7)
#define USART_RDR(base) MMIO32((base) + 0x24u)
#define USART_TDR(base) MMIO32((base) + 0x28u)

#endif /* MP_STM32F7_REGS_H */
