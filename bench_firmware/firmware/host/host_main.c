/* `mcuprof-host PLAN_FILE`: the bench firmware on this machine, for tests. The plan file is
 * the model region; the UART is stdin/stdout (a pty or pipes). Exits when stdin closes.
 * The same steps as main.c, after putting the plan in place. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mp_board.h"
#include "mp_runtime.h"
#include "../protocol/mp_protocol.h"

/* host/board_host.c: makes `p` the model region board_model_region() returns. */
void board_host_set_model_region(const uint8_t *p, uint32_t n);

/* As large as the host board's model region (bench_firmware/boards.py HOST). */
#define MP_HOST_REGION_BYTES (64u * 1024u * 1024u)

/* uint64_t words: the plan's sections are 8-byte aligned from its start, as in flash. */
static uint64_t plan_words[MP_HOST_REGION_BYTES / sizeof(uint64_t)];
static mp_runtime_t runtime;

/* Reads the plan file; returns its size, or -1 after saying why on stderr. */
static long read_plan(const char *path) {
  uint8_t *dst = (uint8_t *)plan_words;
  size_t n;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "mcuprof-host: cannot open plan %s: %s\n", path, strerror(errno));
    return -1;
  }
  n = fread(dst, 1, MP_HOST_REGION_BYTES, f);
  if (ferror(f)) {
    fprintf(stderr, "mcuprof-host: cannot read plan %s: %s\n", path, strerror(errno));
    fclose(f);
    return -1;
  }
  if (n == MP_HOST_REGION_BYTES && fgetc(f) != EOF) {
    fprintf(stderr, "mcuprof-host: plan %s is larger than the %u-byte model region\n", path,
            MP_HOST_REGION_BYTES);
    fclose(f);
    return -1;
  }
  fclose(f);
  return (long)n;
}

int main(int argc, char **argv) {
  uint32_t arena_bytes = 0;
  uint8_t *arena;
  long plan_bytes;

  if (argc != 2) {
    fprintf(stderr, "usage: mcuprof-host PLAN_FILE\n");
    return 2;
  }
  plan_bytes = read_plan(argv[1]);
  if (plan_bytes < 0) return 2;

  board_init();
  board_host_set_model_region((const uint8_t *)plan_words, (uint32_t)plan_bytes);
  arena = board_arena(&arena_bytes);
  mp_runtime_init(&runtime, arena, arena_bytes);
  mp_protocol_boot(&runtime);
  mp_protocol_run();
  return 0;
}
