/* The serial command protocol: the MLPerf Tiny DUT commands plus mcuprof's `mp-` commands.
 * The full command reference is the comment at the top of protocol.c; the host side is
 * bench_firmware/protocol/.
 *
 * Lifecycle: board_init() → mp_runtime_init() → mp_protocol_boot() (loads the plan from the
 * board's model region, prints the boot banner) → mp_protocol_run() (answers commands). */
#ifndef MP_PROTOCOL_H
#define MP_PROTOCOL_H

#include <stdint.h>

#include "mp_runtime.h"

/* The firmware version `profile%` reports as `mcuprof-<version>`; the build may override it
 * (it follows the Python package's version). */
#ifndef MP_FIRMWARE_VERSION
#define MP_FIRMWARE_VERSION "0.1.0"
#endif

/* Most characters of one command before its '%' (MLPerf Tiny: 80). */
#define MP_CMD_MAX 80
/* Most characters of one list line (m-results, m-cycles, ...) before its "\r\n"; longer lists
 * are split into chunk lines. bench_firmware/protocol/ uses the same figure. */
#define MP_LIST_LINE_MAX 200

/* 1 when the two strings are equal: the protocol's word comparisons, a few bytes of code
 * where newlib's word-at-a-time strcmp takes most of a kilobyte of the flash budget. */
int mp_streq(const char *a, const char *b);

/* Binds the protocol to `rt` (already mp_runtime_init'ed), loads the plan from the board's
 * model region and prints the boot banner, ending with `m-ready`. */
void mp_protocol_boot(mp_runtime_t *rt);

/* Takes one received character; answers a command when its '%' arrives. */
void mp_protocol_feed(char c);

/* Reads the UART and answers commands; returns only when the UART reports the end of its
 * input (the host build, when stdin closes). */
void mp_protocol_run(void);

#endif /* MP_PROTOCOL_H */
