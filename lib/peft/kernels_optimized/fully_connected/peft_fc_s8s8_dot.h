/* The inner loops of the optimized int8 path, in two files with the same
 * contract: dsp/peft_fc_s8s8_dot.c (SMLAD through <arm_acle.h>, for cores with
 * the DSP extension) and portable/peft_fc_s8s8_dot.c (plain C, for the rest);
 * lib/peft/sources.cmake picks one. Both give the same exact int32 sums.
 *
 * The weights of 4 input features j are widened into int16 and interleaved by
 * pairs of output features: w[(k / 2) * 8 + j * 2 + k % 2] is feature j's
 * weight of output k, so that one pass reads the 4 features' pairs for
 * outputs k, k + 1 from consecutive words. */
#ifndef PEFT_FC_S8S8_DOT_H
#define PEFT_FC_S8S8_DOT_H

#include <stdint.h>

/* acc[j] += sum over k < n of w(k, j) * q[k], j = 0..3 (n even, w and q
 * 4-byte aligned). */
void peft_fc_s8s8_dot4(int32_t n, const int16_t *w, const int16_t *q, int32_t *acc);

/* The same for two gradient rows at once: acc0 from q0, acc1 from q1 (every
 * weight pair loaded feeds both). */
void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *w, const int16_t *q0, const int16_t *q1,
			 int32_t *acc0, int32_t *acc1);

#endif /* PEFT_FC_S8S8_DOT_H */
