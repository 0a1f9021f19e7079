/* peft_fc_s8s8_dot4 with the DSP extension's SMLAD (ACLE intrinsics): one
 * load of two int16 gradient values feeds four SMLADs, each adding two
 * products of a weight row, 8 multiply-adds per 5 loads. */
#include <arm_acle.h>
#include <string.h>

#include "../peft_fc_s8s8_dot.h"

#if !defined(__ARM_FEATURE_DSP)
#error "dsp/peft_fc_s8s8_dot.c needs the DSP extension; the build picks portable/ otherwise"
#endif

static inline int16x2_t pair(const int16_t *p)
{
	int16x2_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

void peft_fc_s8s8_dot4(int32_t n, const int16_t *w, const int16_t *q, int32_t *acc)
{
	const int16_t *w0 = w, *w1 = w + n, *w2 = w + 2 * n, *w3 = w + 3 * n;
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];

	for (int32_t k = 0; k < n; k += 2) {
		const int16x2_t g = pair(q + k);

		a0 = __smlad(pair(w0 + k), g, a0);
		a1 = __smlad(pair(w1 + k), g, a1);
		a2 = __smlad(pair(w2 + k), g, a2);
		a3 = __smlad(pair(w3 + k), g, a3);
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}
