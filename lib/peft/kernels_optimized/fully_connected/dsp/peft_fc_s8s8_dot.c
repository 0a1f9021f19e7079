/* peft_fc_s8s8_dot4 / _dot4x2 with the DSP extension's SMLAD (ACLE
 * intrinsics): each SMLAD adds two products. One row: a gradient pair and
 * the 4 features' weight pairs (5 loads) feed 4 SMLADs; two rows: 6 loads feed
 * 8 SMLADs (16 multiply-adds). */
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
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
	const int16_t *end = q + n;

	while (q < end) {
		const int16x2_t g = pair(q);

		a0 = __smlad(pair(w), g, a0);
		a1 = __smlad(pair(w + 2), g, a1);
		a2 = __smlad(pair(w + 4), g, a2);
		a3 = __smlad(pair(w + 6), g, a3);
		q += 2;
		w += 8;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *w, const int16_t *q0, const int16_t *q1,
			 int32_t *acc0, int32_t *acc1)
{
	int32_t a0 = acc0[0], a1 = acc0[1], a2 = acc0[2], a3 = acc0[3];
	int32_t b0 = acc1[0], b1 = acc1[1], b2 = acc1[2], b3 = acc1[3];
	const int16_t *end = q0 + n;

	/* One pair of outputs per iteration: unrolled, the 16 registers that
	 * the sums, pairs and pointers take spill sums (GCC 12, -O2). */
	while (q0 < end) {
		const int16x2_t g = pair(q0), h = pair(q1);
		int16x2_t v = pair(w);

		a0 = __smlad(v, g, a0);
		b0 = __smlad(v, h, b0);
		v = pair(w + 2);
		a1 = __smlad(v, g, a1);
		b1 = __smlad(v, h, b1);
		v = pair(w + 4);
		a2 = __smlad(v, g, a2);
		b2 = __smlad(v, h, b2);
		v = pair(w + 6);
		a3 = __smlad(v, g, a3);
		b3 = __smlad(v, h, b3);
		q0 += 2;
		q1 += 2;
		w += 8;
	}
	acc0[0] = a0, acc0[1] = a1, acc0[2] = a2, acc0[3] = a3;
	acc1[0] = b0, acc1[1] = b1, acc1[2] = b2, acc1[3] = b3;
}
