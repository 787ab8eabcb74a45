/* The serial command protocol of the mcuprof bench firmware: framing, dispatch, boot banner.
 *
 * It is the MLPerf Tiny / EEMBC DUT protocol (as the MLPerf Tiny benchmark's reference
 * implementation defines it: mlcommons/tiny benchmark/api/internally_implemented.cpp and
 * submitter_implemented.h, and the host runner benchmark/runner/device_under_test.py) plus
 * mcuprof's own commands, which all start with `mp-`. The host side is
 * bench_firmware/protocol/, whose package docstring repeats this reference; change both together.
 *
 * FRAMING
 *   A command is ASCII ending with '%'; tokens are separated by spaces; '\r', '\n' and NUL
 *   are ignored anywhere. At most MP_CMD_MAX (80) characters before the '%': a longer command
 *   is discarded up to its '%' and answered `e-[command too long]`. An empty command (`%`)
 *   is answered with `m-ready` alone (the host uses it to resynchronise).
 *   Every answer line ends with "\r\n". `m-...` lines are messages, `e-[...]` lines errors.
 *   Every command is answered, after its own lines, by `m-ready`.
 *
 * BOOT
 *   m-timestamp-mode-performance  (the firmware boots in performance mode, see
 *                                 mp-timestamp-mode)
 *   m-plan-[...]                  as for mp-plan, without the e- line
 *   m-init-done
 *   m-ready
 *
 * LISTS
 *   A list is one line `m-<name>-[v0,v1,...]` when that line has at most MP_LIST_LINE_MAX
 *   (200) characters; otherwise it is split into chunk lines `m-<name>-<start>/<total>-[...]`,
 *   each at most 200 characters, where <start> is the index of the chunk's first item and
 *   <total> the list's length: `m-results-0/1000-[...]`, `m-results-41/1000-[...]`, ...
 *   The host joins the chunks and checks that starts are contiguous and add up to <total>.
 *   An empty list is `m-<name>-[]`.
 *
 * MLPERF TINY COMMANDS
 *   name%            m-name-dut-[<board name>]            (bench_firmware/boards.py name)
 *   profile%         m-profile-[mcuprof-<firmware version>]
 *                    m-model-[<EEMBC model name>]: kws01, vww01, ic01 or ad01 when the plan
 *                    has one (`mcuprof compile --mlperf-name`; the MLPerf Tiny runner picks
 *                    its test script by it), else m-model-[<model id: 16 hex digits>], or
 *                    m-model-[none] without a plan. mp-plan always gives the model id.
 *   timestamp%       m-lap-us-<microseconds since boot>   (and a pulse on the timestamp pin;
 *                    in energy mode the pulse alone)
 *   db load N%       m-[Expecting N bytes]; any N from 1 up to the plan's input tensor size
 *                    M, as the reference: the upload fills the input's first N bytes, the
 *                    rest keep what they held. Else e-[db load: N must be at least 1 byte] or
 *                    e-[db load: N bytes exceed the model input of M bytes]; without a valid
 *                    plan: e-[db load: no valid plan (<status>)]
 *                    Anomaly detection (a plan named ad01 whose int8 output has its int8
 *                    input's size): N may also be 4 * M, the input as float32 values
 *                    (little-endian), as the EEMBC AD reference DUT takes it; the board
 *                    quantizes them with the input's scale and zero point (TFLite's
 *                    AffineQuantize: round half away from zero) after the last byte, and keeps
 *                    them for the score (in the arena above the plan's, when there is room;
 *                    else only int8 uploads are taken)
 *   db <hex>%        appends bytes (two hex digits each, any case) to the input; after the
 *                    byte that completes N: m-load-done. Errors (nothing is appended):
 *                    e-[Insufficent number of hex digits]   (odd count; MLPerf's spelling)
 *                    e-[Invalid hex digit '<c>']
 *                    e-[db: K more bytes would exceed the N expected (R received)]
 *                    e-[db: no upload announced; send db load N first]
 *   db print%        the received input bytes as a list named `buffer` of 2-hex-digit items
 *   infer N W%       N timed runs (default 1, at least 1) after W untimed warm-up runs
 *                    (default 10, as MLPerf); answers
 *                      m-warmup-start-W, m-warmup-done, m-infer-start-N,
 *                      m-lap-us-<t0>, m-lap-us-<t1>, m-infer-done, the results list
 *                    (no m-lap-us lines in energy mode).
 *                    t0 and t1 are taken just before the first and after the last timed run;
 *                    each also drives the timestamp pin low for >= 1 us (the energy monitor's
 *                    falling edge). Both lap lines are printed after the timed loop, so UART
 *                    time is not measured. Between them, each run also reads the us clock
 *                    (so laps stay right across cycle-counter wraps) and, when the plan
 *                    overwrites its input, first restores the input from a copy kept in the
 *                    arena; mp-cycles count the runtime's invoke alone. If the input is
 *                    incomplete (fewer than the N of the last db load):
 *                    e-[input incomplete: got X of N bytes] and nothing runs.
 *                    A failing run: e-[infer: <status>]. When the plan overwrites its input
 *                    and the arena has no room to keep a copy: m-warning-[...] before results.
 *   results%         the results list of the last infer again:
 *                    m-results-[v0,...]: the output dequantized, as the EEMBC reference DUTs
 *                    send it: (q - zero_point) * scale of an int8 output, the values of a
 *                    float32 output, each as a decimal fraction with 6 digits after the point
 *                    (-0.003906), d.dddddde<exp> from 1e9 up, nan, inf or -inf. Always one
 *                    line, however long (the runner knows no chunk lines). The values as the
 *                    board holds them, for bit-exact checks: mp-results.
 *                    Anomaly detection (see db load): one value, the anomaly score of the EEMBC
 *                    AD reference: the mean squared error between the dequantized output and
 *                    the input (the float32 upload, or the int8 input dequantized), summed in
 *                    float32 in element order, divided by the element count.
 *   anything else    e-[Unknown command: <command>]
 *
 * MCUPROF COMMANDS
 *   mp-plan%         a valid plan:
 *                      m-plan-[status=ok,model=<16 hex>,board=<code>,ops=<n>,arena=<bytes>,
 *                        capacity=<arena bytes of this board>,bytes=<plan bytes>,
 *                        input=<bytes>,output=<bytes>,input-type=int8|float32,
 *                        output-type=int8|float32]
 *                    no valid plan:
 *                      m-plan-[status=<token>,region=<model region bytes>]
 *                      e-[plan: <mp_status_str>]
 *                    tokens: not-loaded magic version size crc board arena op
 *   mp-reload%       validates the model region again (after the host rewrote the plan),
 *                    forgets the input and the results; answers as mp-plan
 *   mp-kernels%      m-kernels-[ref|dsp]             the kernel path in use
 *   mp-kernels ref%  selects the portable C kernels;  answers m-kernels-[ref]
 *   mp-kernels dsp%  selects the DSP-extension kernels; answers m-kernels-[dsp]
 *   mp-cycles%       list `cycles`: total CYCCNT cycles of each timed run of the last infer
 *                    (the first MP_MAX_RUNS = 64); when N was larger, m-cycles-truncated-<N>
 *   mp-layers%       list `layers`: cycles of each operator in the last timed run
 *   mp-crc%          m-input-crc-[<8 hex>]: CRC-32 (zlib's) of the bytes received since
 *                    `db load`, so the host can tell a dropped or altered byte
 *   mp-results%      list `raw-results`: the last infer's output as the board holds it: an
 *                    int8 output as signed decimals; a float32 output (plan flag
 *                    MP_FLAG_FLOAT_OUTPUT) as the raw IEEE-754 bits of each value, 8 lowercase
 *                    hex digits (3f800000 is 1.0). An int8 item never has 8 characters, so the
 *                    two forms cannot be confused. Chunked like any list.
 *   mp-timestamp-mode%              m-timestamp-mode-performance | m-timestamp-mode-energy
 *   mp-timestamp-mode energy%       EEMBC energy mode: `timestamp%` and `infer` print no
 *                    m-lap-us lines; each timestamp is the timestamp pin's falling edge alone
 *                    (D7, held low >= 1 us, then driven high again), which an energy monitor
 *                    takes through the IO manager. mp-cycles still counts every run. The UART
 *                    stays at 115200 baud (the reference switches to 9600 for the IO manager;
 *                    set the runner's DUT baud to 115200 instead). A reset returns to
 *   mp-timestamp-mode performance%  performance mode (m-lap-us lines, and the same pulses).
 *                    Answers the mode as the boot banner names it.
 *   mp-info%         m-info-[board=<name>,code=<plan board code>,clock=<Hz>,arena=<bytes>,
 *                      region=<model region bytes>,kernels=ref|dsp,plan=<token>,
 *                      version=<firmware version>,max-runs=64,max-ops=256]
 *   mp-cycles, mp-layers, mp-results (and results) before an infer, or after a new upload
 *   or reload:
 *                    e-[<command>: no inference since the last upload; run infer first]
 *   Any command given more arguments than it takes: e-[<command>: too many arguments].
 */
/* Serial protocol code runs outside the timed inference: compiled for size, which keeps the
 * firmware image inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("Os")
#endif

#include <string.h>

#include "mp_board.h"
#include "mp_out.h"
#include "mp_protocol.h"
#include "mp_session.h"

int mp_streq(const char *a, const char *b) {
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}

/* Most tokens in a command, its word included. */
#define MP_MAX_TOKENS 4

typedef struct {
  const char *word;
  mp_cmd_fn fn;
  uint32_t max_args; /* tokens after the command word */
} mp_command_t;

static const mp_command_t commands[] = {
    {"name", mp_cmd_name, 0},
    {"profile", mp_cmd_profile, 0},
    {"timestamp", mp_cmd_timestamp, 0},
    {"db", mp_cmd_db, 2},
    {"infer", mp_cmd_infer, 2},
    {"results", mp_cmd_results, 0},
    {"mp-plan", mp_cmd_plan, 0},
    {"mp-reload", mp_cmd_reload, 0},
    {"mp-kernels", mp_cmd_kernels, 1},
    {"mp-cycles", mp_cmd_cycles, 0},
    {"mp-layers", mp_cmd_layers, 0},
    {"mp-crc", mp_cmd_crc, 0},
    {"mp-info", mp_cmd_info, 0},
    {"mp-results", mp_cmd_raw_results, 0},
    {"mp-timestamp-mode", mp_cmd_timestamp_mode, 1},
};

static char cmd_buf[MP_CMD_MAX + 1];
static uint32_t cmd_len;
static int cmd_too_long;

static void print_command(uint32_t argc, char **argv) {
  uint32_t i;
  for (i = 0; i < argc; i++) {
    if (i) mp_out_str(" ");
    mp_out_text(argv[i]);
  }
}

static void execute(char *line) {
  char *argv[MP_MAX_TOKENS];
  uint32_t argc = 0, i;
  int too_many = 0;

  while (*line != '\0') {
    while (*line == ' ') *line++ = '\0';
    if (*line == '\0') break;
    if (argc == MP_MAX_TOKENS) {
      too_many = 1;
      break;
    }
    argv[argc++] = line;
    while (*line != '\0' && *line != ' ') line++;
  }
  if (argc == 0) return;

  for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (!mp_streq(argv[0], commands[i].word)) continue;
    if (too_many || argc - 1u > commands[i].max_args) {
      mp_out_str("e-[");
      mp_out_str(commands[i].word);
      mp_out_str(": too many arguments]");
      mp_out_end();
      return;
    }
    commands[i].fn(argc, argv);
    return;
  }
  mp_out_str("e-[Unknown command: ");
  print_command(argc, argv);
  if (too_many) mp_out_str(" ...");
  mp_out_str("]");
  mp_out_end();
}

void mp_protocol_feed(char c) {
  if (c == '\r' || c == '\n' || c == '\0') return;
  if (c != '%') {
    if (cmd_len < MP_CMD_MAX) {
      cmd_buf[cmd_len++] = c;
    } else {
      cmd_too_long = 1;
    }
    return;
  }
  if (cmd_too_long) {
    mp_out_error("command too long");
  } else {
    cmd_buf[cmd_len] = '\0';
    execute(cmd_buf);
  }
  cmd_len = 0;
  cmd_too_long = 0;
  mp_out_line("m-ready");
}

void mp_protocol_boot(mp_runtime_t *rt) {
  mp_session.rt = rt;
  cmd_len = 0;
  cmd_too_long = 0;
  mp_session_reload();
  mp_print_timestamp_mode();
  mp_print_plan(0);
  mp_out_line("m-init-done");
  mp_out_line("m-ready");
}

void mp_protocol_run(void) {
  for (;;) {
    int c = board_uart_getc();
    if (c < 0) return;
    mp_protocol_feed((char)c);
  }
}
