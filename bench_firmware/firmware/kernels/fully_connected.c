/* FULLY_CONNECTED, int8: TFLM reference_integer_ops::FullyConnected (per-tensor) and
 * FullyConnectedPerChannel (tensorflow/lite/kernels/internal/reference/integer_ops/
 * fully_connected.h). Per-tensor quantization arrives expanded to per-feature arrays, so
 * one kernel serves both; weight zero points are 0 (the compiler refuses others).
 *
 * Weights (bench_firmware/ops/fully_connected.py): [out_features][row_bytes], rows padded to
 * a word; 8-bit rows stored in fours, each four interleaved word by word (word g of rows 4q,
 * 4q + 1, 4q + 2, 4q + 3, then word g + 1: fc_w8 below), the rows past the last four as they
 * are; with weight_bits 4, packed two per byte (mp_kernels.h), read nibble by nibble by the
 * reference loop and unpacked FC_ROWS rows at a time into the scratch buffer by the DSP path.
 * The DSP path starts each accumulator from folded_bias = bias + input_offset * sum(row), so
 * the inner loop is a plain int8 dot product (fc_dsp below). The sums equal TFLM's modulo
 * 2^32, which is all the int32 accumulator keeps. Both paths give identical bytes.
 *
 * On boards whose flash has wait states the plan gives 8-bit weights room in the arena
 * (resident_off, resident_bytes; fully_connected.py fc_resident_bytes): the runtime copies
 * them there when the plan loads (mp_op_fully_connected_load), and the DSP path reads them
 * from SRAM, where each weight, read once per inference, costs no wait states. Where the
 * requantization takes the short path, the copy is a stream of records, one per four rows:
 * their folded biases, their interleaved words, their requantization words
 * (fc_quad_record). */
#include <stdint.h>

#include "mp_acle.h"
#include "mp_fixedpoint.h"
#include "mp_kernels.h"
#include "mp_requant.h"

static inline int8_t fc_out(const mp_fc_params_t *p, int32_t acc, int32_t mult, int32_t shift) {
  return mp_requantize_output(acc, mult, shift, p->output_offset, p->act_min, p->act_max);
}

/* Weight i of row o in the 8-bit order (file comment). */
static inline int32_t fc_w8(const int8_t *w, int32_t o, int32_t i, int32_t row_bytes,
                            int32_t n_out) {
  if (o < (n_out & ~3))
    return w[(o >> 2) * 4 * row_bytes + (i >> 2) * 16 + (o & 3) * 4 + (i & 3)];
  return w[(n_out & ~3) * row_bytes + (o - (n_out & ~3)) * row_bytes + i];
}

static void fc_ref(const mp_fc_params_t *p, const int8_t *in, int8_t *out, const int8_t *w,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift,
                   int32_t rows) {
  const int32_t n_in = (int32_t)p->in_features, n_out = (int32_t)p->out_features;
  const int bits4 = p->weight_bits == 4u;
  const int32_t stride = (int32_t)(bits4 ? mp_int4_row_bytes(p->row_bytes) : p->row_bytes);
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t *x = in + r * n_in;
    for (int32_t o = 0; o < n_out; ++o) {
      const int8_t *row = w + o * stride;
      int32_t acc = 0;
      for (int32_t i = 0; i < n_in; ++i)
        acc += (bits4 ? mp_int4_at(row, i) : fc_w8(w, o, i, stride, n_out)) *
               ((int32_t)x[i] + p->input_offset);
      acc += bias[o];
      out[r * n_out + o] = fc_out(p, acc, mult[o], shift[o]);
    }
  }
}

/* acc[r] += sum over `groups` words of x . w_r for three weight rows (r = 0..2), the input
 * extended once per word for all three. On the target, hand-scheduled so the four loads of a
 * pass are neighbours (Cortex-M4: N neighbouring loads take N + 1 cycles, DDI 0439B §3.3.2):
 * 26 cycles for 12 MACs. Three rows, not four, because that needs one register more than the
 * core has. */
#define FC_ROWS 3
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
#define FC_ROW_ASM(w, a)                   \
  "sxtb16 lr, " w "\n\t"                   \
  "sxtb16 " w ", " w ", ror #8\n\t"        \
  "smlad  %[" a "], r7, lr, %[" a "]\n\t"  \
  "smlad  %[" a "], r8, " w ", %[" a "]\n\t"
static void fc_dot3(const int8_t *x, const int8_t *w0, int32_t row_bytes, int32_t groups,
                    int32_t *acc) {
  if (groups <= 0) return;
  /* Explicit registers: 14 live values, GCC finds no allocation for them itself. */
  register const int8_t *xp __asm__("r0") = x;
  register const int8_t *xe __asm__("r1") = x + 4 * groups;
  register const int8_t *p0 __asm__("r2") = w0;
  register const int8_t *p1 __asm__("r3") = w0 + row_bytes;
  register const int8_t *p2 __asm__("r12") = w0 + 2 * row_bytes;
  register int32_t a0 __asm__("r4") = acc[0];
  register int32_t a1 __asm__("r5") = acc[1];
  register int32_t a2 __asm__("r6") = acc[2];
  __asm__ volatile(
      "1:\n\t"
      "ldr    r8, [%[x]], #4\n\t"
      "ldr    r9, [%[p0]], #4\n\t"
      "ldr    r10, [%[p1]], #4\n\t"
      "ldr    r11, [%[p2]], #4\n\t"
      "sxtb16 r7, r8\n\t"
      "sxtb16 r8, r8, ror #8\n\t"
      FC_ROW_ASM("r9", "a0")
      FC_ROW_ASM("r10", "a1")
      FC_ROW_ASM("r11", "a2")
      "cmp    %[x], %[xe]\n\t"
      "bne    1b\n\t"
      : [x] "+r"(xp), [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [a0] "+r"(a0),
        [a1] "+r"(a1), [a2] "+r"(a2)
      : [xe] "r"(xe)
      : "r7", "r8", "r9", "r10", "r11", "lr", "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
}
#else
static void fc_dot3(const int8_t *x, const int8_t *w0, int32_t row_bytes, int32_t groups,
                    int32_t *acc) {
  for (int32_t g = 0; g < groups; ++g) {
    const uint32_t xv = mp_load32(x + 4 * g);
    const uint32_t xe = mp_sxtb16(xv), xo = mp_sxtb16_ror8(xv);
    for (int32_t r = 0; r < FC_ROWS; ++r) {
      const uint32_t v = mp_load32(w0 + r * row_bytes + 4 * g);
      acc[r] = mp_smlad(xe, mp_sxtb16(v), acc[r]);
      acc[r] = mp_smlad(xo, mp_sxtb16_ror8(v), acc[r]);
    }
  }
}
#endif

/* acc[r] += sum over `groups` words of x . w_r for four rows in the interleaved order (file
 * comment): per group the input word, the four rows' words, SXTB16 pairs and two SMLADs per
 * row (16 MACs). */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
/* A group's MACs after its first extends: entering with r3, lr the input word's {x0, x2} and
 * {x1, x3} halfword pairs, r12 row 0's {w0, w2} (SXTB16 of r8, its word) and r9-r11 rows
 * 1-3's words; row 3's second SMLAD (lr with r11) is left to the caller. Each SXTB16 is
 * followed by an independent SMLAD of the row before, for the Cortex-M7's dual issue (an
 * extend may only take the first slot). */
#define FC4_MACS_ASM                       \
  "sxtb16 r8, r8, ror #8\n\t"              \
  "smlad  %[a0], r3, r12, %[a0]\n\t"       \
  "sxtb16 r12, r9\n\t"                     \
  "smlad  %[a0], lr, r8, %[a0]\n\t"        \
  "sxtb16 r9, r9, ror #8\n\t"              \
  "smlad  %[a1], r3, r12, %[a1]\n\t"       \
  "sxtb16 r12, r10\n\t"                    \
  "smlad  %[a1], lr, r9, %[a1]\n\t"        \
  "sxtb16 r10, r10, ror #8\n\t"            \
  "smlad  %[a2], r3, r12, %[a2]\n\t"       \
  "sxtb16 r12, r11\n\t"                    \
  "smlad  %[a2], lr, r10, %[a2]\n\t"       \
  "sxtb16 r11, r11, ror #8\n\t"            \
  "smlad  %[a3], r3, r12, %[a3]\n\t"
#if defined(MP_CORTEX_M7)
/* The Cortex-M7 form: single loads issued beside the extends, each group loading the next
 * group's input word and first two weight words once their registers are free: 13 cycles a
 * group in the cycle model's scheduler (timing/m7.py), against 14 for the LDM form. The last
 * group loads nothing ahead, so nothing past the input or the weights is read. */
#define FC4_M7_BODY                        \
  "sxtb16 lr, r3, ror #8\n\t"              \
  "ldr    r10, [%[w], #8]\n\t"             \
  "sxtb16 r3, r3\n\t"                      \
  "ldr    r11, [%[w], #12]\n\t"            \
  "sxtb16 r12, r8\n\t"                     \
  "add    %[w], %[w], #16\n\t"             \
  FC4_MACS_ASM
#else
/* The Cortex-M4 form, one instruction at a time: per group one load of the input word and
 * one LDM of the four rows' words; two groups a pass, an odd one first. */
#define FC4_GROUP                          \
  "ldr    r3, [%[x]], #4\n\t"              \
  "ldmia  %[w]!, {r8, r9, r10, r11}\n\t"   \
  "sxtb16 lr, r3, ror #8\n\t"              \
  "sxtb16 r3, r3\n\t"                      \
  "sxtb16 r12, r8\n\t"                     \
  FC4_MACS_ASM                             \
  "smlad  %[a3], lr, r11, %[a3]\n\t"
#endif
/* The four-row loop over [x, xe): the sums in a0-a3, w advancing past the groups. On the
 * Cortex-M4 its head sits on a word boundary: a taken branch to a 32-bit instruction that is
 * not word-aligned refills the pipeline a cycle later (DDI 0439B Table 3-1 note, P depends on
 * "the alignment and width of the target instruction"; timing/m4.py). */
#if defined(MP_CORTEX_M7)
#define FC4_LOOP_ASM                                   \
  "sub    %[xe], %[xe], #4\n\t" /* the last group's word */ \
  "ldr    r3, [%[x]]\n\t"                             \
  "ldr    r8, [%[w]]\n\t"                             \
  "ldr    r9, [%[w], #4]\n\t"                         \
  "cmp    %[x], %[xe]\n\t"                            \
  "beq    2f\n\t"                                     \
  "1:\n\t"                                            \
  FC4_M7_BODY                                         \
  "ldr    r3, [%[x], #4]!\n\t"                        \
  "ldr    r8, [%[w]]\n\t"                             \
  "smlad  %[a3], lr, r11, %[a3]\n\t"                  \
  "ldr    r9, [%[w], #4]\n\t"                         \
  "cmp    %[x], %[xe]\n\t"                            \
  "bne    1b\n\t"                                     \
  "2:\n\t"                                            \
  FC4_M7_BODY                                         \
  "smlad  %[a3], lr, r11, %[a3]\n\t"
#else
#define FC4_LOOP_ASM                                   \
  "sub    r12, %[xe], %[x]\n\t"                       \
  "tst    r12, #4\n\t" /* an odd count: its first group enters the pass's second */ \
  "bne    2f\n\t"                                     \
  ".p2align 2\n\t"                                   \
  "1:\n\t"                                            \
  FC4_GROUP                                           \
  "2:\n\t"                                            \
  FC4_GROUP                                           \
  "cmp    %[x], %[xe]\n\t"                            \
  "bne    1b\n\t"
#endif
static void fc_dot4(const int8_t *x, const int8_t *w, int32_t groups, int32_t *acc) {
  if (groups <= 0) return;
  register const int8_t *xp __asm__("r0") = x;
  register const int8_t *xe __asm__("r1") = x + 4 * groups;
  register const int8_t *wp __asm__("r2") = w;
  register int32_t a0 __asm__("r4") = acc[0];
  register int32_t a1 __asm__("r5") = acc[1];
  register int32_t a2 __asm__("r6") = acc[2];
  register int32_t a3 __asm__("r7") = acc[3];
  __asm__ volatile(
      FC4_LOOP_ASM
      : [x] "+r"(xp), [w] "+r"(wp), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
        [xe] "+r"(xe)
      :
      : "r3", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* One record of the SRAM copy (mp_op_fully_connected_load): four rows' folded biases, their
 * `groups` interleaved words, their requantization words; returns the four outputs packed in a
 * word (byte k: row k) and moves *w past the record. One stream from start to end: the biases
 * load with one LDM, and where the loop stops, the pointer is at the table, each row's three
 * words one LDM (MP_RQ_REGS_ASM, as the convolution's pairs). */
static inline uint32_t fc_quad_record(const int8_t *x, int32_t groups, const int8_t **w) {
  register const int8_t *xp __asm__("r0") = x;
  register const int8_t *xe __asm__("r1") = x + 4 * groups;
  register const int8_t *wp __asm__("r2") = *w;
  register int32_t a0 __asm__("r4");
  register int32_t a1 __asm__("r5");
  register int32_t a2 __asm__("r6");
  register int32_t a3 __asm__("r7");
  __asm__ volatile(
      "ldmia  %[w]!, {r4, r5, r6, r7}\n\t"
      FC4_LOOP_ASM
      "ldmia  %[w]!, {r8, r9, r10}\n\t"
      MP_RQ_REGS_ASM("r4", "r8", "r9", "r10", "r12")
      "ldmia  %[w]!, {r8, r9, r10}\n\t"
      MP_RQ_REGS_ASM("r5", "r8", "r9", "r10", "r12")
      "ldmia  %[w]!, {r8, r9, r10}\n\t"
      MP_RQ_REGS_ASM("r6", "r8", "r9", "r10", "r12")
      "ldmia  %[w]!, {r8, r9, r10}\n\t"
      MP_RQ_REGS_ASM("r7", "r8", "r9", "r10", "r12")
      "bfi    r4, r5, #8, #8\n\t"
      "bfi    r4, r6, #16, #8\n\t"
      "bfi    r4, r7, #24, #8\n\t"
      : [x] "+r"(xp), [w] "+r"(wp), [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2),
        [a3] "=&r"(a3), [xe] "+r"(xe)
      :
      : "r3", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
  *w = wp;
  return (uint32_t)a0;
}
#else
static void fc_dot4(const int8_t *x, const int8_t *w, int32_t groups, int32_t *acc) {
  for (int32_t g = 0; g < groups; ++g, w += 16) {
    const uint32_t xv = mp_load32(x + 4 * g);
    const uint32_t xe = mp_sxtb16(xv), xo = mp_sxtb16_ror8(xv);
    for (int32_t r = 0; r < 4; ++r) {
      const uint32_t v = mp_load32(w + 4 * r);
      acc[r] = mp_smlad(xe, mp_sxtb16(v), acc[r]);
      acc[r] = mp_smlad(xo, mp_sxtb16_ror8(v), acc[r]);
    }
  }
}
static uint32_t fc_quad_record(const int8_t *x, int32_t groups, const int8_t **w) {
  const int32_t *head = (const int32_t *)(const void *)*w;
  int32_t acc[4] = {head[0], head[1], head[2], head[3]};
  fc_dot4(x, *w + 16, groups, acc);
  const int32_t *t = (const int32_t *)(const void *)(*w + 16 + 16 * groups);
  uint32_t packed = 0;
  for (int32_t k = 0; k < 4; ++k)
    packed |= (uint32_t)(uint8_t)mp_requant_table_out(t + MP_REQUANT_TABLE_WORDS * k, acc[k])
              << (8 * k);
  *w += 16 + 16 * groups + 4 * 4 * MP_REQUANT_TABLE_WORDS;
  return packed;
}
#endif

/* The DSP path: accumulators start from folded_bias (bias + input_offset * sum(row), see the
 * file comment), so the inner loop is a plain int8 dot product, three output features per
 * pass sharing each extended input word (8-bit rows: four per pass, fc_dot4); SXTB16 pairs
 * bytes (0, 2) and (1, 3) of input and weights alike, so SMLAD sums matching products.
 * Requantization by fc_out_dsp(), equal to mp_requantize_output() bit for bit. */
#if defined(__GNUC__)
#define FC_INLINE inline __attribute__((always_inline))
#else
#define FC_INLINE inline
#endif

/* The table words mp_requant_init() makes for an output with `mult` and `shift` on the short
 * path: {multiplier, right shift, 2^(right - 1) + (output_offset << right)}. */
static FC_INLINE void fc_table_words(const mp_fc_params_t *p, int32_t mult, int32_t shift,
                                     int32_t *t) {
  const int32_t right = -shift;
  t[0] = mult;
  t[1] = right;
  t[2] = (INT32_C(1) << (right - 1)) + (int32_t)((uint32_t)p->output_offset << right);
}

/* One output: the short requantization when the compiler found that it holds for every output
 * (rq_short; bench_firmware/ops/fully_connected.py fc_short_requant), with the table words
 * mp_requant_init() would make computed in place; otherwise mp_requant_out_fast(). */
static FC_INLINE int8_t fc_out_dsp(const mp_fc_params_t *p, int32_t acc, int32_t mult,
                                   int32_t shift) {
  if (p->rq_short) {
    int32_t t[MP_REQUANT_TABLE_WORDS];
    fc_table_words(p, mult, shift, t);
    return mp_requant_table_out(t, acc);
  }
  return mp_requant_out_fast(acc, mult, shift, p->output_offset, p->act_min, p->act_max);
}

/* Where the SRAM copy takes records (bench_firmware/ops/fully_connected.py FcLayer.records):
 * 8-bit rows of whole words on the short path, at least one four of rows. */
static int fc_records(const mp_fc_params_t *p) {
  return p->weight_bits == 8u && p->rq_short && p->row_bytes == p->in_features &&
         p->out_features >= 4u;
}

/* w: the rows in fours (quads), interleaved; rest: row quad_rows, then the others as they
 * are; records: the SRAM copy's records (fc_quad_record), or NULL. */
static void fc_dsp(const mp_fc_params_t *p, const int8_t *in, int8_t *out, const int8_t *w,
                   const int8_t *rest, const int8_t *records, const int32_t *folded,
                   const int32_t *mult, const int32_t *shift, int32_t rows, int8_t *unpacked) {
  const int32_t n_in = (int32_t)p->in_features, n_out = (int32_t)p->out_features;
  const int32_t row_bytes = (int32_t)p->row_bytes;
  const int32_t groups = n_in / 4, tail = groups * 4;
  /* 8-bit rows in fours first (fc_dot4), then the rest, three at a time. */
  const int32_t quad_rows = unpacked == 0 ? (n_out & ~3) : 0;
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t *x = in + r * n_in;
    int8_t *y = out + r * n_out;
    if (records != 0) {
      const int8_t *rec = records;
      for (int32_t o = 0; o < quad_rows; o += 4) {
        const uint32_t four = fc_quad_record(x, groups, &rec);
        memcpy(y + o, &four, 4);
      }
    } else {
      for (int32_t o = 0; o < quad_rows; o += 4) {
        int32_t acc[4] = {folded[o], folded[o + 1], folded[o + 2], folded[o + 3]};
        fc_dot4(x, w + o * row_bytes, groups, acc);
        for (int32_t k = 0; k < 4; ++k) {
          for (int32_t i = tail; i < n_in; ++i)
            acc[k] += fc_w8(w, o + k, i, row_bytes, n_out) * x[i];
          y[o + k] = fc_out_dsp(p, acc[k], mult[o + k], shift[o + k]);
        }
      }
    }
    for (int32_t o = quad_rows; o < n_out; o += FC_ROWS) {
      const int32_t n = n_out - o < FC_ROWS ? n_out - o : FC_ROWS;
      const int8_t *w0 = rest + (o - quad_rows) * row_bytes;
      if (unpacked != 0) { /* 4-bit weights: this pass's rows unpacked to int8 */
        const int32_t stride4 = (int32_t)mp_int4_row_bytes((uint32_t)row_bytes);
        for (int32_t k = 0; k < n; ++k)
          mp_unpack_int4_row(unpacked + k * row_bytes, w + (o + k) * stride4, row_bytes);
        w0 = unpacked;
      }
      /* Fewer rows left: the missing ones repeat the last (step 0 from there), unused. */
      int32_t acc[FC_ROWS] = {0};
      for (int32_t k = 0; k < n; ++k) acc[k] = folded[o + k];
      if (n == FC_ROWS) {
        fc_dot3(x, w0, row_bytes, groups, acc);
      } else {
        for (int32_t k = 0; k < n; ++k) {
          int32_t one[FC_ROWS] = {acc[k], 0, 0};
          fc_dot3(x, w0 + k * row_bytes, 0, groups, one);
          acc[k] = one[0];
        }
      }
      for (int32_t k = 0; k < n; ++k) {
        const int8_t *row = w0 + k * row_bytes;
        for (int32_t i = tail; i < n_in; ++i) acc[k] += (int32_t)row[i] * x[i];
        y[o + k] = fc_out_dsp(p, acc[k], mult[o + k], shift[o + k]);
      }
    }
  }
}

/* At load: the 8-bit weights copied into the arena at resident_off, where the plan puts them
 * (bench_firmware/ops/fully_connected.py fc_resident_bytes), for the DSP path to read from
 * SRAM; the reference loops keep reading the plan. Where fc_records() holds, one record per
 * four rows (their folded biases, their interleaved words as stored, the {multiplier, right,
 * rounding constant} words mp_requant_init() makes for each), then the other rows as they are;
 * otherwise the stored rows. The copy must lie inside the arena, word-aligned, and be exactly
 * that long, or the plan is refused. */
mp_status_t mp_op_fully_connected_load(const mp_op_ctx_t *ctx) {
  if (ctx->params == 0) return MP_ERR_OP;
  const mp_fc_params_t *p = (const mp_fc_params_t *)ctx->params;
  if (p->resident_bytes == 0) return MP_OK;
  const uint32_t stored = p->out_features * p->row_bytes, quads = p->out_features / 4u;
  const int records = fc_records(p);
  if (p->weight_bits != 8u || p->out_features > 0xFFFFu || p->row_bytes > 0xFFFFu ||
      p->resident_bytes != stored + (records ? quads * MP_FC_RECORD_EXTRA : 0u) ||
      !mp_in_plan(ctx, p->weights_off, stored) ||
      !mp_in_plan(ctx, p->folded_bias_off, 4u * p->out_features) ||
      !mp_in_plan(ctx, p->mult_off, 4u * p->out_features) ||
      !mp_in_plan(ctx, p->shift_off, 4u * p->out_features))
    return MP_ERR_OP;
  uint8_t *dst = (uint8_t *)mp_scratch(ctx, p->resident_off, p->resident_bytes);
  if (dst == 0) return MP_ERR_ARENA;
  const uint8_t *rows = ctx->plan + p->weights_off;
  if (!records) {
    memcpy(dst, rows, stored);
    return MP_OK;
  }
  const int32_t *folded = MP_PLAN_AT(ctx, int32_t, p->folded_bias_off);
  const int32_t *mult = MP_PLAN_AT(ctx, int32_t, p->mult_off);
  const int32_t *shift = MP_PLAN_AT(ctx, int32_t, p->shift_off);
  const uint32_t quad_bytes = 4u * p->row_bytes;
  for (uint32_t q = 0; q < quads; ++q, rows += quad_bytes) {
    int32_t head[4 + 4 * MP_REQUANT_TABLE_WORDS];
    for (uint32_t k = 0; k < 4u; ++k) {
      const uint32_t o = 4u * q + k;
      head[k] = folded[o];
      fc_table_words(p, mult[o], shift[o], head + 4 + MP_REQUANT_TABLE_WORDS * k);
    }
    memcpy(dst, head, 16);
    memcpy(dst + 16, rows, quad_bytes);
    memcpy(dst + 16 + quad_bytes, head + 4, 16u * MP_REQUANT_TABLE_WORDS);
    dst += MP_FC_RECORD_EXTRA + quad_bytes;
  }
  memcpy(dst, rows, (p->out_features - 4u * quads) * p->row_bytes);
  return MP_OK;
}

mp_status_t mp_op_fully_connected(const mp_op_ctx_t *ctx) {
  if (ctx->params == 0 || ctx->n_inputs < 1) return MP_ERR_OP;
  const mp_fc_params_t *p = (const mp_fc_params_t *)ctx->params;
  if (p->in_features == 0 || p->out_features == 0 || p->row_bytes < p->in_features ||
      ctx->output->bytes % p->out_features != 0)
    return MP_ERR_OP;
  const int32_t rows = (int32_t)(ctx->output->bytes / p->out_features);
  if (ctx->input[0]->bytes != (uint32_t)rows * p->in_features) return MP_ERR_OP;
  const int8_t *in = (const int8_t *)ctx->input_data[0];
  int8_t *out = (int8_t *)ctx->output_data;
  const int8_t *w = MP_PLAN_AT(ctx, int8_t, p->weights_off);
  const int32_t *mult = MP_PLAN_AT(ctx, int32_t, p->mult_off);
  const int32_t *shift = MP_PLAN_AT(ctx, int32_t, p->shift_off);
  if (p->weight_bits != 8u && p->weight_bits != 4u) return MP_ERR_OP;
  /* 4-bit weights: the DSP path unpacks FC_ROWS rows at a time into the scratch buffer
   * (bench_firmware/ops/fully_connected.py fc_scratch_bytes); without it, the reference. */
  int8_t *unpacked = 0;
  if (p->weight_bits == 4u && p->scratch_bytes >= FC_ROWS * p->row_bytes)
    unpacked = (int8_t *)mp_scratch(ctx, p->scratch_off, p->scratch_bytes);
  const int32_t *folded = MP_PLAN_AT(ctx, int32_t, p->folded_bias_off);
  const int32_t quad_bytes = (int32_t)(p->out_features / 4u * 4u * p->row_bytes);
  if (ctx->path == MP_KERNELS_DSP && p->weight_bits == 8u && p->resident_bytes != 0 &&
      fc_records(p)) {
    const int8_t *records = (const int8_t *)ctx->arena + p->resident_off;
    const int8_t *rest =
        records + p->out_features / 4u * (MP_FC_RECORD_EXTRA + 4u * p->row_bytes);
    fc_dsp(p, in, out, 0, rest, records, folded, mult, shift, rows, 0);
  } else if (ctx->path == MP_KERNELS_DSP && p->weight_bits == 8u) {
    const int8_t *w8 = p->resident_bytes != 0 ? (const int8_t *)ctx->arena + p->resident_off : w;
    fc_dsp(p, in, out, w8, w8 + quad_bytes, 0, folded, mult, shift, rows, 0);
  } else if (ctx->path == MP_KERNELS_DSP && unpacked != 0) {
    fc_dsp(p, in, out, w, w, 0, folded, mult, shift, rows, unpacked);
  } else {
    fc_ref(p, in, out, w, MP_PLAN_AT(ctx, int32_t, p->bias_off), mult, shift, rows);
  }
  return MP_OK;
}
