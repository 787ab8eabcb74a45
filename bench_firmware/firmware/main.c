/* The bench firmware's entry: bring the board up, bind the runtime to the arena, load the plan
 * from the model region and answer serial commands forever. */
#include "mp_board.h"
#include "mp_runtime.h"
#include "protocol/mp_protocol.h"

static mp_runtime_t runtime;

int main(void) {
  uint32_t arena_bytes = 0;
  uint8_t *arena;

  board_init();
  arena = board_arena(&arena_bytes);
  mp_runtime_init(&runtime, arena, arena_bytes);
  mp_protocol_boot(&runtime); /* loads the plan and prints the boot banner */
  for (;;) {
    /* Returns only if the UART reports the end of its input, which a board's never does. */
    mp_protocol_run();
  }
}
