/* Output for the protocol: small integer and hex formatters (no printf) and a line buffer
 * written to the UART, plus the list writer that splits long lists into chunk lines. */
#ifndef MP_OUT_H
#define MP_OUT_H

#include <stdint.h>

/* Longest text one list item formats to ("-2147483648" is 11 characters; a float,
 * "-999999999.999999" or "-3.402823e38", 17). */
#define MP_ITEM_MAX 20
/* Digits after the point of a float item (the EEMBC reference DUTs print 3). */
#define MP_FLOAT_DIGITS 6

/* Formatters: write into `buf` (no terminating NUL) and return the number of characters. */
uint32_t mp_fmt_u32(char *buf, uint32_t v);
uint32_t mp_fmt_i32(char *buf, int32_t v);
/* `digits` lowercase hex digits, zero-padded (1..8). */
uint32_t mp_fmt_hex(char *buf, uint32_t v, uint32_t digits);
/* A float as a decimal fraction with MP_FLOAT_DIGITS digits after the point ("-0.003906"),
 * "d.dddddde<exp>" from 1e9 up, or "nan", "inf", "-inf": all of which Python's float() and
 * C's strtod read. */
uint32_t mp_fmt_float(char *buf, float v);

/* Pieces of the current line; mp_out_end() adds "\r\n" and sends it. */
void mp_out_chars(const char *s, uint32_t n);
void mp_out_str(const char *s);
/* Text that came from the other side (a command): non-printable characters become '?'. */
void mp_out_text(const char *s);
void mp_out_u32(uint32_t v);
void mp_out_i32(int32_t v);
void mp_out_hex(uint32_t v, uint32_t digits);
void mp_out_end(void);

/* Whole lines. */
void mp_out_line(const char *s);
/* `e-[<s>]` */
void mp_out_error(const char *s);

/* Formats item `i` of a list into `buf` (at most MP_ITEM_MAX characters). */
typedef uint32_t (*mp_item_fn)(char *buf, const void *ctx, uint32_t i);

/* A list of `n` items as `m-<name>-[i0,i1,...]` when that fits in MP_LIST_LINE_MAX
 * characters, else as chunk lines `m-<name>-<start>/<n>-[...]`, each at most
 * MP_LIST_LINE_MAX characters, `start` being the index of the chunk's first item. */
void mp_out_list(const char *name, uint32_t n, mp_item_fn item, const void *ctx);

/* The same list always as one `m-<name>-[...]` line, however long: `m-results` stays
 * readable by the MLPerf Tiny runner, which knows no chunk lines. */
void mp_out_list_line(const char *name, uint32_t n, mp_item_fn item, const void *ctx);

/* Item formatters for mp_out_list; `ctx` points at the array. */
uint32_t mp_item_u32(char *buf, const void *ctx, uint32_t i);      /* uint32_t[] as decimal */
uint32_t mp_item_int8(char *buf, const void *ctx, uint32_t i);     /* int8 bytes as decimal */
uint32_t mp_item_word_hex(char *buf, const void *ctx, uint32_t i); /* 4-byte words, 8 hex */
uint32_t mp_item_byte_hex(char *buf, const void *ctx, uint32_t i); /* bytes, 2 hex digits */

#endif /* MP_OUT_H */
