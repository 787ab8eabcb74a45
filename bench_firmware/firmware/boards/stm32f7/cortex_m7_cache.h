/* The Cortex-M7 L1 instruction and data caches. */
#ifndef MP_CORTEX_M7_CACHE_H
#define MP_CORTEX_M7_CACHE_H

/* Invalidate both L1 caches, then enable them (SCB_CCR IC / DC). Call once, at reset. */
void cortex_m7_caches_enable(void);

#endif /* MP_CORTEX_M7_CACHE_H */
