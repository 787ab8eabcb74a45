/* Internal to the protocol: the state the commands share (plan status, the input upload,
 * the last inference) and the command handlers. Not for the runtime or the boards. */
#ifndef MP_SESSION_H
#define MP_SESSION_H

#include <stdint.h>

#include "mp_runtime.h"

typedef struct {
  mp_runtime_t *rt;
  mp_status_t plan_status; /* of the last mp_runtime_load */
  /* EEMBC energy timestamp mode (mp-timestamp-mode energy): timestamps are the pin's falling
   * edges alone, no m-lap-us lines. Survives mp-reload; a reset returns to performance. */
  int energy_mode;

  /* The input upload (`db load N`, `db <hex>`): bytes go straight into the input tensor. */
  uint8_t *input;        /* the input tensor in the arena (NULL without a plan) */
  uint32_t input_bytes;  /* its size */
  uint32_t expected;     /* N of the last `db load N`; 0: no upload announced */
  uint32_t received;     /* bytes received since */
  uint32_t input_crc;    /* CRC-32 of those bytes (mp_crc32, zlib's CRC) */
  /* When the memory planner lets an operator overwrite the input tensor, every invoke needs a
   * fresh copy: `stash` keeps one in the arena above the plan's arena_bytes, if there is room.
   * input_reused without a stash: only the first invoke after an upload sees the real input. */
  int input_reused;
  uint8_t *stash;
  int input_stale;       /* input_reused, no stash, and an invoke has run since the upload */

  /* Anomaly detection (a plan named ad01 whose int8 output has the int8 input's size: an
   * autoencoder). As the EEMBC AD reference DUT, the host may send the input as float32 values
   * (`db load` of 4 bytes per element), which the board quantizes, and `m-results` is one
   * anomaly score, the mean squared error between the dequantized output and the input. The
   * float32 values are kept for the score in `features`, in the arena below the stash. */
  int ad_score;          /* m-results is the anomaly score */
  float *features;       /* room for the float32 input; NULL: no room, int8 uploads only */
  int features_float;    /* the current upload is float32 values, not int8 */

  /* The last `infer`. */
  int have_results;      /* an inference completed since the last upload or reload */
  uint32_t runs;         /* its N */
  uint32_t run_cycles[MP_MAX_RUNS]; /* total cycles of its first MP_MAX_RUNS timed runs */
} mp_session_t;

extern mp_session_t mp_session;

/* (Re)loads the plan from the board's model region, keeping the kernel path; forgets the
 * input and the last results. */
void mp_session_reload(void);

/* Copies the kept input back into the input tensor, when the plan overwrites it. */
void mp_session_restore_input(void);

/* A short, stable token for a status, for machine-read fields: "ok", "crc", "magic", ... */
const char *mp_status_token(mp_status_t status);

/* Parses a decimal uint32; returns 0 on a bad digit, an empty string or overflow. */
int mp_parse_u32(const char *s, uint32_t *out);

/* Command handlers: argv[0] is the command word; argc counts it. */
typedef void (*mp_cmd_fn)(uint32_t argc, char **argv);

void mp_cmd_name(uint32_t argc, char **argv);
void mp_cmd_profile(uint32_t argc, char **argv);
void mp_cmd_timestamp(uint32_t argc, char **argv);
void mp_cmd_db(uint32_t argc, char **argv);
void mp_cmd_infer(uint32_t argc, char **argv);
void mp_cmd_results(uint32_t argc, char **argv);

void mp_cmd_plan(uint32_t argc, char **argv);
void mp_cmd_reload(uint32_t argc, char **argv);
void mp_cmd_kernels(uint32_t argc, char **argv);
void mp_cmd_cycles(uint32_t argc, char **argv);
void mp_cmd_layers(uint32_t argc, char **argv);
void mp_cmd_crc(uint32_t argc, char **argv);
void mp_cmd_info(uint32_t argc, char **argv);
void mp_cmd_raw_results(uint32_t argc, char **argv);
void mp_cmd_timestamp_mode(uint32_t argc, char **argv);

/* `m-timestamp-mode-performance` or `m-timestamp-mode-energy`, as the boot banner says it. */
void mp_print_timestamp_mode(void);

/* The `m-plan-[...]` line (and, for a plan that did not load and `with_error`, the
 * `e-[plan: <status>]` line after it). */
void mp_print_plan(int with_error);

/* `m-results-[...]`: the output tensor dequantized, as decimal fractions (MLPerf Tiny); for an
 * anomaly-detection plan (ad_score), the one anomaly score. */
void mp_print_results(void);

/* The `raw-results` list: the output tensor's values as the board holds them, int8 as signed
 * decimal, float32 as 8-hex-digit words (IEEE-754 bits), for bit-exact checks. */
void mp_print_raw_results(void);

/* The plan's EEMBC model name (kws01, vww01, ic01, ad01), or NULL when it has none. */
const char *mp_mlperf_name(void);

#endif /* MP_SESSION_H */
