/* The inner loop of the optimized int8 path, in two files with the same
 * contract: dsp/peft_fc_s8s8_dot.c (SMLAD through <arm_acle.h>, for cores with
 * the DSP extension) and portable/peft_fc_s8s8_dot.c (plain C, for the rest);
 * lib/peft/sources.cmake picks one. Both give the same exact int32 sums. */
#ifndef PEFT_FC_S8S8_DOT_H
#define PEFT_FC_S8S8_DOT_H

#include <stdint.h>

/* acc[j] += sum over k < n of w[j * n + k] * q[k], j = 0..3: four int16 rows w
 * (4-byte aligned, n even) against one int16 row q. */
void peft_fc_s8s8_dot4(int32_t n, const int16_t *w, const int16_t *q, int32_t *acc);

#endif /* PEFT_FC_S8S8_DOT_H */
