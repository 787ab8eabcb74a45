/* The host implementation of mp_board.h, for tests: the UART is stdin / stdout, time comes
 * from the monotonic clock, there are no cycle figures, the model region is a buffer the host
 * main fills from a file, the arena a static buffer.
 * Sizes must match bench_firmware/boards.py HOST (tests/unit/test_boards.py checks). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "mp_board.h"

#define HOST_SRAM_BYTES (64u * 1024u * 1024u)    /* boards.HOST.sram_bytes */
#define HOST_FIRMWARE_RAM_RESERVE (8u * 1024u) /* boards.FIRMWARE_RAM_RESERVE */
#define HOST_ARENA_BYTES (HOST_SRAM_BYTES - HOST_FIRMWARE_RAM_RESERVE)

const char board_name[] = "host";
const uint16_t board_code = 0;
const uint32_t board_clock_hz = 0;

/* Set the model region to the n bytes at p (the plan the host main read from a file). */
void board_host_set_model_region(const uint8_t *p, uint32_t n);

static uint8_t arena[HOST_ARENA_BYTES] __attribute__((aligned(16)));
static const uint8_t no_model[16] __attribute__((aligned(16)));
static const uint8_t *model_region = no_model;
static uint32_t model_region_bytes;
static struct timespec start;

void board_init(void) { clock_gettime(CLOCK_MONOTONIC, &start); }

void board_uart_write(const char *s, uint32_t n) {
  while (n > 0u) {
    ssize_t written = write(1, s, n);
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      return; /* stdout is gone: nobody is listening */
    }
    s += written;
    n -= (uint32_t)written;
  }
}

int board_uart_getc(void) {
  unsigned char c;
  for (;;) {
    ssize_t got = read(0, &c, 1);
    if (got == 1) {
      return (int)c;
    }
    if (got < 0 && errno == EINTR) {
      continue;
    }
    return -1; /* end of input or error */
  }
}

uint32_t board_cycles(void) { return 0u; }

uint32_t board_micros(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t us = (int64_t)(now.tv_sec - start.tv_sec) * 1000000 +
               (int64_t)(now.tv_nsec - start.tv_nsec) / 1000;
  return (uint32_t)us;
}

void board_timestamp_pin(int level) { (void)level; }

const uint8_t *board_model_region(uint32_t *bytes) {
  if (bytes) {
    *bytes = model_region_bytes;
  }
  return model_region;
}

uint8_t *board_arena(uint32_t *bytes) {
  if (bytes) {
    *bytes = HOST_ARENA_BYTES;
  }
  return arena;
}

void board_host_set_model_region(const uint8_t *p, uint32_t n) {
  model_region = p ? p : no_model;
  model_region_bytes = p ? n : 0u;
}
