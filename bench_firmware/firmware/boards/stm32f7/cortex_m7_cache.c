/* Cortex-M7 L1 caches on, after invalidation: their contents are UNKNOWN at reset
 * (Cortex-M7 TRM, ARM DDI 0489, "L1 caches"; ARMv7-M ARM, "Cache maintenance operations").
 *
 * Erratum 1259864 (Cortex-M7 before r1p2: data corruption with write-through stores): SRAM is
 * write-back write-allocate in the default memory map (ARMv7-M ARM §B3.1, "The system address
 * map"), and this firmware programs no MPU region and never sets CACR.FORCEWT, so it makes no
 * write-through store. */
#include <stdint.h>

#include "cortex_m.h"
#include "cortex_m7_cache.h"

/* ARMv7-M ARM, "Cache identification registers" (CSSELR selects, CCSIDR describes). */
#define SCB_CCSIDR MMIO32(0xE000ED80u)
#define SCB_CSSELR MMIO32(0xE000ED84u)
#define CCSIDR_SETS(x) (((x) >> 13) & 0x7FFFu)  /* NumSets - 1 */
#define CCSIDR_WAYS(x) (((x) >> 3) & 0x3FFu)    /* Associativity - 1 */
/* ARMv7-M ARM, "Cache maintenance operations" (ICIALLU, DCISW). */
#define SCB_ICIALLU MMIO32(0xE000EF50u)
#define SCB_DCISW MMIO32(0xE000EF60u)
/* The DCISW set/way operand (ARMv7-M ARM, set/way format) for the M7's 4-way data cache with
 * 32-byte lines (Cortex-M7 TRM, "L1 caches"): way in [31:30], set from bit 5. */
#define DCISW_WAY_SHIFT 30u
#define DCISW_SET_SHIFT 5u

static void icache_enable(void) {
  cortex_m_dsb();
  cortex_m_isb();
  SCB_ICIALLU = 0u;
  cortex_m_dsb();
  cortex_m_isb();
  SCB_CCR |= SCB_CCR_IC;
  cortex_m_dsb();
  cortex_m_isb();
}

static void dcache_enable(void) {
  SCB_CSSELR = 0u; /* level 1 data cache */
  cortex_m_dsb();
  uint32_t ccsidr = SCB_CCSIDR;
  for (uint32_t set = 0; set <= CCSIDR_SETS(ccsidr); ++set) {
    for (uint32_t way = 0; way <= CCSIDR_WAYS(ccsidr); ++way) {
      SCB_DCISW = (way << DCISW_WAY_SHIFT) | (set << DCISW_SET_SHIFT);
    }
  }
  cortex_m_dsb();
  SCB_CCR |= SCB_CCR_DC;
  cortex_m_dsb();
  cortex_m_isb();
}

void cortex_m7_caches_enable(void) {
  icache_enable();
  dcache_enable();
}
