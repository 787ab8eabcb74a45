/* The MLPerf Tiny DUT commands: name, profile, timestamp, db, infer, results.
 * Answers as in mlcommons/tiny benchmark/api/internally_implemented.cpp (reference at the top
 * of protocol.c). */
/* Serial protocol code runs outside the timed inference: compiled for size, which keeps the
 * firmware image inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("Os")
#endif

#include <string.h>

#include "mp_board.h"
#include "mp_fixedpoint.h"
#include "mp_out.h"
#include "mp_protocol.h"
#include "mp_session.h"

/* MLPerf's `infer N` without W warms up 10 times; without N it runs once. */
#define MP_DEFAULT_RUNS 1u
#define MP_DEFAULT_WARMUP 10u
/* Bound on the spin that holds the timestamp pin low, in case the micros counter stands still
 * (a host build without a clock); on a board the counter ends the wait after ~2 us. */
#define MP_PULSE_SPIN_MAX 100000u

/* Reads the timestamp, then drives the pin low for at least 1 us and back high: in EEMBC
 * energy mode the timestamp is this falling edge, which the energy monitor (through the IO
 * manager) takes on the Arduino header's D7, held low >= 1 us (submitter_implemented.h,
 * th_timestamp: "pull pin low, hold low for at least 1us, release"). In performance mode the
 * pulse comes too, harmless without a monitor. */
static uint32_t take_timestamp(void) {
  const uint32_t t = board_micros();
  uint32_t spins = 0;
  board_timestamp_pin(0);
  /* Two counter ticks from a reading taken after the pin fell: at least one whole
   * microsecond low. (Counted from `t`, the wait could end less than 1 us after the edge:
   * board_micros() reads the counter some cycles before it returns, and the pin write
   * follows.) */
  const uint32_t low = board_micros();
  while ((uint32_t)(board_micros() - low) < 2u && ++spins < MP_PULSE_SPIN_MAX) {
  }
  board_timestamp_pin(1);
  return t;
}

/* The boards fold the 32-bit cycle counter into their microsecond count only when asked
 * (boards/common/cycle_counter.c), and it wraps every ~20 s: asking once per run keeps a long
 * timed loop's laps right, for a few dozen cycles per run. */
static void keep_clock(void) { (void)board_micros(); }

static void print_lap(uint32_t t) {
  /* Energy mode: the pin edge is the timestamp; the reference prints nothing
   * (submitter_implemented.h EE_CFG_ENERGY_MODE). */
  if (mp_session.energy_mode) return;
  mp_out_str("m-lap-us-");
  mp_out_u32(t);
  mp_out_end();
}

static void print_no_plan(const char *what) {
  mp_out_str("e-[");
  mp_out_str(what);
  mp_out_str(": no valid plan (");
  mp_out_str(mp_status_str(mp_session.plan_status));
  mp_out_str(")]");
  mp_out_end();
}

void mp_cmd_name(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  mp_out_str("m-name-dut-[");
  mp_out_str(board_name);
  mp_out_str("]");
  mp_out_end();
}

/* The EEMBC model names by their code in the plan's flags (plan_format.py MLPERF_NAMES; the
 * MLPerf Tiny runner selects its test script by the m-model-[...] name: EE_MODEL_VERSION_* in
 * mlcommons/tiny benchmark/api/internally_implemented.h). */
static const char *const mlperf_names[] = {"", "kws01", "vww01", "ic01", "ad01"};

const char *mp_mlperf_name(void) {
  uint32_t code;
  if (mp_session.plan_status != MP_OK) return NULL;
  code = (mp_session.rt->header->flags & MP_FLAG_MLPERF_MASK) >> MP_FLAG_MLPERF_SHIFT;
  if (code == 0u || code >= sizeof mlperf_names / sizeof mlperf_names[0]) return NULL;
  return mlperf_names[code];
}

void mp_cmd_profile(uint32_t argc, char **argv) {
  uint32_t i;
  const char *name = mp_mlperf_name();
  (void)argc;
  (void)argv;
  mp_out_line("m-profile-[mcuprof-" MP_FIRMWARE_VERSION "]");
  mp_out_str("m-model-[");
  if (name != NULL) {
    mp_out_str(name);
  } else if (mp_session.plan_status == MP_OK) {
    for (i = 0; i < sizeof mp_session.rt->header->model_id; i++) {
      mp_out_hex(mp_session.rt->header->model_id[i], 2);
    }
  } else {
    mp_out_str("none");
  }
  mp_out_str("]");
  mp_out_end();
}

void mp_cmd_timestamp(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  print_lap(take_timestamp());
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void db_load(const char *count) {
  mp_session_t *s = &mp_session;
  uint32_t n;
  if (s->plan_status != MP_OK) {
    print_no_plan("db load");
    return;
  }
  if (!mp_parse_u32(count, &n)) {
    mp_out_str("e-[db load: bad byte count '");
    mp_out_text(count);
    mp_out_str("']");
    mp_out_end();
    return;
  }
  /* As the reference (internally_implemented.cpp ee_buffer_parse): any N from 1 up to the
   * buffer, which here is the input tensor; bytes past N keep what they held. */
  if (n == 0u) {
    mp_out_error("db load: N must be at least 1 byte");
    return;
  }
  /* An anomaly-detection plan also takes the input as float32 values, 4 bytes each, as the
   * EEMBC AD reference DUT reads it (mp_session.h). */
  s->features_float = s->features != NULL && n == 4u * s->input_bytes;
  if (n > s->input_bytes && !s->features_float) {
    mp_out_str("e-[db load: ");
    mp_out_u32(n);
    mp_out_str(" bytes exceed the model input of ");
    mp_out_u32(s->input_bytes);
    if (s->features != NULL) {
      mp_out_str(" bytes (or ");
      mp_out_u32(4u * s->input_bytes);
      mp_out_str(" bytes of float32 values)]");
    } else {
      mp_out_str(" bytes]");
    }
    mp_out_end();
    return;
  }
  s->expected = n;
  s->received = 0;
  s->input_crc = 0;
  s->input_stale = 0;
  s->have_results = 0; /* the upload may overwrite the output tensor's bytes */
  mp_out_str("m-[Expecting ");
  mp_out_u32(n);
  mp_out_str(" bytes]");
  mp_out_end();
}

static void db_print(void) {
  mp_session_t *s = &mp_session;
  const uint8_t *src = s->features_float ? (const uint8_t *)s->features
                      : s->stash != NULL ? s->stash : s->input;
  mp_out_list("buffer", src != NULL ? s->received : 0u, mp_item_byte_hex, src);
}

/* The float32 upload is complete: quantize it into the input tensor (and the stash). */
static void quantize_features(void) {
  mp_session_t *s = &mp_session;
  const mp_tensor_t *t = &s->rt->tensors[s->rt->header->input_tensor];
  uint32_t i;
  for (i = 0; i < s->input_bytes; i++) {
    /* As TFLite's reference AffineQuantize (the QUANTIZE kernel): round(x / scale) +
     * zero_point, halves away from zero, clamped to int8. */
    const int32_t q = mp_clamp(mp_round_half_away(s->features[i] / t->scale) + t->zero_point,
                               INT8_MIN, INT8_MAX);
    s->input[i] = (uint8_t)q;
    if (s->stash != NULL) s->stash[i] = (uint8_t)q;
  }
}

static void db_hex(const char *hex) {
  mp_session_t *s = &mp_session;
  const uint32_t digits = (uint32_t)strlen(hex);
  uint32_t i, n;
  uint8_t *dst;
  for (i = 0; i < digits; i++) {
    if (hex_value(hex[i]) < 0) {
      char c[2];
      c[0] = hex[i];
      c[1] = '\0';
      mp_out_str("e-[Invalid hex digit '");
      mp_out_text(c);
      mp_out_str("']");
      mp_out_end();
      return;
    }
  }
  if (digits & 1u) {
    mp_out_error("Insufficent number of hex digits"); /* sic: MLPerf Tiny's spelling */
    return;
  }
  if (s->expected == 0u) {
    mp_out_error("db: no upload announced; send db load N first");
    return;
  }
  n = digits / 2u;
  if (n > s->expected - s->received) {
    mp_out_str("e-[db: ");
    mp_out_u32(n);
    mp_out_str(" more bytes would exceed the ");
    mp_out_u32(s->expected);
    mp_out_str(" expected (");
    mp_out_u32(s->received);
    mp_out_str(" received)]");
    mp_out_end();
    return;
  }
  dst = s->features_float ? (uint8_t *)s->features : s->input;
  for (i = 0; i < n; i++) {
    uint8_t b = (uint8_t)((hex_value(hex[2u * i]) << 4) | hex_value(hex[2u * i + 1u]));
    dst[s->received + i] = b;
    if (s->stash != NULL && !s->features_float) s->stash[s->received + i] = b;
  }
  s->input_crc = mp_crc32(s->input_crc, dst + s->received, n);
  s->received += n;
  if (s->received == s->expected && n != 0u) {
    if (s->features_float) quantize_features();
    mp_out_line("m-load-done");
  }
}

void mp_cmd_db(uint32_t argc, char **argv) {
  if (argc == 3 && mp_streq(argv[1], "load")) {
    db_load(argv[2]);
  } else if (argc == 2 && mp_streq(argv[1], "print")) {
    db_print();
  } else if (argc == 2) {
    db_hex(argv[1]);
  } else {
    mp_out_error("db: expected db load N, db print or db <hex bytes>");
  }
}

static int parse_count(const char *what, const char *text, uint32_t *out) {
  if (mp_parse_u32(text, out)) return 1;
  mp_out_str("e-[infer: bad ");
  mp_out_str(what);
  mp_out_str(" '");
  mp_out_text(text);
  mp_out_str("']");
  mp_out_end();
  return 0;
}

static void print_invoke_error(mp_status_t st) {
  mp_out_str("e-[infer: ");
  mp_out_str(mp_status_str(st));
  mp_out_str("]");
  mp_out_end();
}

void mp_cmd_infer(uint32_t argc, char **argv) {
  mp_session_t *s = &mp_session;
  mp_runtime_t *rt = s->rt;
  uint32_t runs = MP_DEFAULT_RUNS, warmup = MP_DEFAULT_WARMUP, i, t0, t1;
  mp_status_t st = MP_OK;
  int was_stale;

  if (argc >= 2 && !parse_count("run count", argv[1], &runs)) return;
  if (argc >= 3 && !parse_count("warm-up count", argv[2], &warmup)) return;
  if (runs == 0u) {
    mp_out_error("infer: the run count must be at least 1");
    return;
  }
  if (s->plan_status != MP_OK) {
    print_no_plan("infer");
    return;
  }
  if (s->expected == 0u || s->received != s->expected) {
    mp_out_str("e-[input incomplete: got ");
    mp_out_u32(s->received);
    mp_out_str(" of ");
    mp_out_u32(s->expected != 0u ? s->expected : s->input_bytes);
    mp_out_str(" bytes]");
    mp_out_end();
    return;
  }
  s->have_results = 0;
  was_stale = s->input_stale;
  /* Without a kept copy, the first invoke consumes an input the plan overwrites. */
  if (s->input_reused && s->stash == NULL) s->input_stale = 1;

  mp_out_str("m-warmup-start-");
  mp_out_u32(warmup);
  mp_out_end();
  for (i = 0; i < warmup; i++) {
    mp_session_restore_input();
    st = mp_runtime_invoke(rt);
    keep_clock();
    if (st != MP_OK) {
      print_invoke_error(st);
      return;
    }
  }
  mp_out_line("m-warmup-done");
  mp_out_str("m-infer-start-");
  mp_out_u32(runs);
  mp_out_end();

  /* The timed loop: nothing is printed between the two timestamps, so UART time is not
   * measured; the two m-lap-us lines follow the loop. The pin edges mark the loop itself. */
  t0 = take_timestamp();
  for (i = 0; i < runs; i++) {
    mp_session_restore_input();
    st = mp_runtime_invoke(rt);
    keep_clock();
    if (st != MP_OK) break;
    if (i < MP_MAX_RUNS) s->run_cycles[i] = rt->last_total_cycles;
  }
  t1 = take_timestamp();
  if (st != MP_OK) {
    print_invoke_error(st);
    return;
  }
  print_lap(t0);
  print_lap(t1);
  mp_out_line("m-infer-done");
  s->runs = runs;
  s->have_results = 1;
  if (s->input_stale && (was_stale || warmup > 0u || runs > 1u)) {
    mp_out_line("m-warning-[the plan overwrites its input and the arena has no room for a "
                "copy: later runs used an overwritten input; upload it before each infer]");
  }
  mp_print_results();
}

/* m-results items: the output dequantized, (q - zero_point) * scale for an int8 output (as
 * the EEMBC reference DUTs' th_results print it), the value itself for a float32 output. */
typedef struct {
  const uint8_t *data;
  const mp_tensor_t *tensor;
  int is_float;
} dequant_ctx_t;

static uint32_t item_dequantized(char *buf, const void *ctx, uint32_t i) {
  const dequant_ctx_t *d = (const dequant_ctx_t *)ctx;
  float v;
  if (d->is_float) {
    memcpy(&v, d->data + 4u * i, sizeof v);
  } else {
    v = (float)((int32_t)((const int8_t *)d->data)[i] - d->tensor->zero_point) *
        d->tensor->scale;
  }
  return mp_fmt_float(buf, v);
}

/* The EEMBC AD reference's anomaly score: the mean squared error between the dequantized
 * output and the input, summed in float32 in element order (th_results of the reference
 * anomaly_detection submission). The input is the float32 upload when there was one, else the
 * int8 input dequantized (from the stash when the plan overwrites the input). */
static float anomaly_score(void) {
  mp_session_t *s = &mp_session;
  const mp_tensor_t *tin = &s->rt->tensors[s->rt->header->input_tensor];
  const mp_tensor_t *tout = &s->rt->tensors[s->rt->header->output_tensor];
  const int8_t *in = (const int8_t *)(s->stash != NULL ? s->stash : s->input);
  uint32_t bytes = 0, i;
  const int8_t *out = (const int8_t *)mp_runtime_output(s->rt, &bytes);
  float sum = 0.0f;
  for (i = 0; i < bytes; i++) {
    const float x = s->features_float ? s->features[i]
                                      : (float)((int32_t)in[i] - tin->zero_point) * tin->scale;
    const float y = (float)((int32_t)out[i] - tout->zero_point) * tout->scale;
    const float d = y - x;
    sum += d * d;
  }
  return sum / (float)bytes;
}

static uint32_t item_score(char *buf, const void *ctx, uint32_t i) {
  (void)ctx;
  (void)i;
  return mp_fmt_float(buf, anomaly_score());
}

void mp_print_results(void) {
  mp_session_t *s = &mp_session;
  uint32_t bytes = 0;
  dequant_ctx_t ctx;
  if (s->ad_score) {
    mp_out_list_line("results", 1u, item_score, NULL);
    return;
  }
  ctx.data = mp_runtime_output(s->rt, &bytes);
  ctx.tensor = &s->rt->tensors[s->rt->header->output_tensor];
  ctx.is_float = (s->rt->header->flags & MP_FLAG_FLOAT_OUTPUT) != 0u;
  /* One line however long: the MLPerf Tiny runner knows no chunk lines. */
  mp_out_list_line("results", ctx.is_float ? bytes / 4u : bytes, item_dequantized, &ctx);
}

void mp_print_raw_results(void) {
  mp_session_t *s = &mp_session;
  uint32_t bytes = 0;
  const uint8_t *out = mp_runtime_output(s->rt, &bytes);
  if (s->rt->header->flags & MP_FLAG_FLOAT_OUTPUT) {
    mp_out_list("raw-results", bytes / 4u, mp_item_word_hex, out);
  } else {
    mp_out_list("raw-results", bytes, mp_item_int8, out);
  }
}

void mp_cmd_results(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  if (mp_session.plan_status != MP_OK) {
    print_no_plan("results");
  } else if (!mp_session.have_results) {
    mp_out_error("results: no inference since the last upload; run infer first");
  } else {
    mp_print_results();
  }
}

void mp_cmd_raw_results(uint32_t argc, char **argv) {
  (void)argc;
  (void)argv;
  if (mp_session.plan_status != MP_OK) {
    print_no_plan("mp-results");
  } else if (!mp_session.have_results) {
    mp_out_error("mp-results: no inference since the last upload; run infer first");
  } else {
    mp_print_raw_results();
  }
}
