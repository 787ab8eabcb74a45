/* The model region and the tensor arena: both are placed by the board's linker script
 * (boards/<name>/linker.ld + common/sections.ld), so this is the same on every board. */
#include <stdint.h>

#include "mp_board.h"

extern uint8_t __model_region_start[];
extern uint8_t __model_region_end[];
extern uint8_t __arena_start[];
extern uint8_t __arena_end[];

const uint8_t *board_model_region(uint32_t *bytes) {
  if (bytes) {
    *bytes = (uint32_t)(__model_region_end - __model_region_start);
  }
  return __model_region_start;
}

uint8_t *board_arena(uint32_t *bytes) {
  if (bytes) {
    *bytes = (uint32_t)(__arena_end - __arena_start);
  }
  return __arena_start;
}
