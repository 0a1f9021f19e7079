/* The inner loops of the optimized int8 path, in two files with the same
 * contract: dsp/peft_fc_s8s8_dot.c (SXTB16 and SMLAD through <arm_acle.h>,
 * for cores with the DSP extension) and portable/peft_fc_s8s8_dot.c (plain C,
 * for the rest); lib/peft/sources.cmake picks one. Both give the same exact
 * int32 sums.
 *
 * The int8 weights [out][in] are read where they lie: w points at weight
 * (0, i0) and row o starts n_in bytes after row o - 1; words are read
 * unaligned (the M4 allows it). Widened, the weights of 4 input features j
 * are int16 pairs interleaved by pairs of output features:
 * cols[(k / 2) * 8 + j * 2 + k % 2] is feature j's weight of output k, so that
 * one pass reads the 4 features' pairs for outputs k, k + 1 from consecutive
 * words. */
#ifndef PEFT_FC_S8S8_DOT_H
#define PEFT_FC_S8S8_DOT_H

#include <stdint.h>

/* cols (the layout above, n_out + n_out % 2 outputs) = the weights of input
 * features 0..3 at w, 0 for the partner of an odd last output. */
void peft_fc_s8s8_widen4(int32_t n_out, const int8_t *w, int32_t n_in, int16_t *cols);

/* acc[j] += sum over k < n of cols(k, j) * q[k], j = 0..3 (n even, cols and q
 * 4-byte aligned). */
void peft_fc_s8s8_dot4(int32_t n, const int16_t *cols, const int16_t *q, int32_t *acc);

/* The same for two gradient rows at once (every weight pair loaded feeds
 * both): q2 interleaves them by pairs, q2[2k + m] = row 0's q[k + m] and
 * q2[2k + 2 + m] = row 1's, for even k and m = 0, 1; acc0 from row 0, acc1
 * from row 1. */
void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *cols, const int16_t *q2, int32_t *acc0,
			 int32_t *acc1);

/* peft_fc_s8s8_dot4 on the int8 weights where they lie, without widening
 * (one row: widening would cost more than it saves): the first 2 * n_pairs
 * outputs. */
void peft_fc_s8s8_dot4_direct(int32_t n_pairs, const int8_t *w, int32_t n_in, const int16_t *q,
			      int32_t *acc);

#endif /* PEFT_FC_S8S8_DOT_H */
