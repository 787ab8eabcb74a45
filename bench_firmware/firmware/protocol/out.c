/* Protocol output: formatters, the line buffer, and the chunking list writer. */
/* Serial protocol code runs outside the timed inference: compiled for size, which keeps the
 * firmware image inside its flash budget (bench_firmware/boards.py FIRMWARE_FLASH_BUDGET). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("Os")
#endif

#include <string.h>

#include "mp_board.h"
#include "mp_out.h"
#include "mp_protocol.h"

/* One list line is at most MP_LIST_LINE_MAX + 2 characters; the buffer holds it whole so a
 * line usually leaves in one UART write. Longer output is flushed as it fills. */
#define MP_OUT_BUF (MP_LIST_LINE_MAX + 56)

static char out_buf[MP_OUT_BUF];
static uint32_t out_len;

static const char hex_digits[] = "0123456789abcdef";

uint32_t mp_fmt_u32(char *buf, uint32_t v) {
  char rev[10];
  uint32_t n = 0, i;
  do {
    rev[n++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  for (i = 0; i < n; i++) buf[i] = rev[n - 1u - i];
  return n;
}

uint32_t mp_fmt_i32(char *buf, int32_t v) {
  if (v < 0) {
    buf[0] = '-';
    /* Negate in unsigned arithmetic: -INT32_MIN does not fit an int32_t. */
    return 1u + mp_fmt_u32(buf + 1, 0u - (uint32_t)v);
  }
  return mp_fmt_u32(buf, (uint32_t)v);
}

uint32_t mp_fmt_hex(char *buf, uint32_t v, uint32_t digits) {
  uint32_t i;
  if (digits > 8u) digits = 8u;
  for (i = 0; i < digits; i++) {
    buf[digits - 1u - i] = hex_digits[v & 0xfu];
    v >>= 4;
  }
  return digits;
}

/* 10^MP_FLOAT_DIGITS */
static uint32_t float_unit(void) {
  uint32_t unit = 1, i;
  for (i = 0; i < MP_FLOAT_DIGITS; i++) unit *= 10u;
  return unit;
}

uint32_t mp_fmt_float(char *buf, float v) {
  const uint32_t unit = float_unit();
  uint32_t n = 0, whole, frac, i, exp10 = 0;
  char digits[10];
  if (v != v) {
    memcpy(buf, "nan", 3);
    return 3;
  }
  if (v < 0.0f) {
    buf[n++] = '-';
    v = -v;
  }
  if (v > 3.402823466e38f) {
    memcpy(buf + n, "inf", 3);
    return n + 3;
  }
  /* Past 1e9 the integer part no longer fits the fraction's arithmetic: scientific form. */
  while (v >= 1e9f) {
    v /= 10.0f;
    exp10++;
  }
  if (exp10 != 0u) {
    while (v >= 10.0f) {
      v /= 10.0f;
      exp10++;
    }
  }
  whole = (uint32_t)v;
  frac = (uint32_t)((v - (float)whole) * (float)unit + 0.5f);
  if (frac >= unit) { /* rounding carried into the integer part */
    frac -= unit;
    whole++;
  }
  n += mp_fmt_u32(buf + n, whole);
  buf[n++] = '.';
  for (i = 0; i < MP_FLOAT_DIGITS; i++) {
    digits[MP_FLOAT_DIGITS - 1u - i] = (char)('0' + frac % 10u);
    frac /= 10u;
  }
  memcpy(buf + n, digits, MP_FLOAT_DIGITS);
  n += MP_FLOAT_DIGITS;
  if (exp10 != 0u) {
    buf[n++] = 'e';
    n += mp_fmt_u32(buf + n, exp10);
  }
  return n;
}

static void out_flush(void) {
  if (out_len != 0u) {
    board_uart_write(out_buf, out_len);
    out_len = 0;
  }
}

void mp_out_chars(const char *s, uint32_t n) {
  while (n-- != 0u) {
    if (out_len == MP_OUT_BUF) out_flush();
    out_buf[out_len++] = *s++;
  }
}

void mp_out_str(const char *s) { mp_out_chars(s, (uint32_t)strlen(s)); }

void mp_out_text(const char *s) {
  for (; *s != '\0'; s++) {
    char c = (*s >= 0x20 && *s <= 0x7e) ? *s : '?';
    mp_out_chars(&c, 1);
  }
}

void mp_out_u32(uint32_t v) {
  char b[MP_ITEM_MAX];
  mp_out_chars(b, mp_fmt_u32(b, v));
}

void mp_out_i32(int32_t v) {
  char b[MP_ITEM_MAX];
  mp_out_chars(b, mp_fmt_i32(b, v));
}

void mp_out_hex(uint32_t v, uint32_t digits) {
  char b[8];
  mp_out_chars(b, mp_fmt_hex(b, v, digits));
}

void mp_out_end(void) {
  mp_out_chars("\r\n", 2);
  out_flush();
}

void mp_out_line(const char *s) {
  mp_out_str(s);
  mp_out_end();
}

void mp_out_error(const char *s) {
  mp_out_str("e-[");
  mp_out_str(s);
  mp_out_str("]");
  mp_out_end();
}

uint32_t mp_item_u32(char *buf, const void *ctx, uint32_t i) {
  return mp_fmt_u32(buf, ((const uint32_t *)ctx)[i]);
}

uint32_t mp_item_int8(char *buf, const void *ctx, uint32_t i) {
  return mp_fmt_i32(buf, (int32_t)((const int8_t *)ctx)[i]);
}

uint32_t mp_item_word_hex(char *buf, const void *ctx, uint32_t i) {
  uint32_t bits;
  /* The word's bits in the core's byte order (little-endian on Cortex-M and x86): for a
   * float32 output these are the IEEE-754 bits, which the host turns back into a float. */
  memcpy(&bits, (const uint8_t *)ctx + 4u * i, sizeof bits);
  return mp_fmt_hex(buf, bits, 8);
}

uint32_t mp_item_byte_hex(char *buf, const void *ctx, uint32_t i) {
  return mp_fmt_hex(buf, ((const uint8_t *)ctx)[i], 2);
}

void mp_out_list_line(const char *name, uint32_t n, mp_item_fn item, const void *ctx) {
  char b[MP_ITEM_MAX];
  uint32_t i;
  mp_out_str("m-");
  mp_out_str(name);
  mp_out_str("-[");
  for (i = 0; i < n; i++) {
    if (i) mp_out_chars(",", 1);
    mp_out_chars(b, item(b, ctx, i));
  }
  mp_out_str("]");
  mp_out_end();
}

void mp_out_list(const char *name, uint32_t n, mp_item_fn item, const void *ctx) {
  char b[MP_ITEM_MAX];
  const uint32_t name_len = (uint32_t)strlen(name);
  uint32_t len = 2u + name_len + 2u + 1u; /* "m-" name "-[" ... "]" */
  uint32_t i;

  for (i = 0; i < n && len <= MP_LIST_LINE_MAX; i++) len += item(b, ctx, i) + (i ? 1u : 0u);
  if (len <= MP_LIST_LINE_MAX) {
    mp_out_list_line(name, n, item, ctx);
    return;
  }

  /* Chunk lines; every chunk holds at least one item, so the loop always advances. */
  i = 0;
  while (i < n) {
    uint32_t first = i;
    len = 2u + name_len + 1u + mp_fmt_u32(b, i) + 1u + mp_fmt_u32(b, n) + 2u + 1u;
    mp_out_str("m-");
    mp_out_str(name);
    mp_out_str("-");
    mp_out_u32(i);
    mp_out_str("/");
    mp_out_u32(n);
    mp_out_str("-[");
    while (i < n) {
      uint32_t w = item(b, ctx, i);
      uint32_t need = w + (i != first ? 1u : 0u);
      if (i != first && len + need > MP_LIST_LINE_MAX) break;
      if (i != first) mp_out_chars(",", 1);
      mp_out_chars(b, w);
      len += need;
      i++;
    }
    mp_out_str("]");
    mp_out_end();
  }
}
