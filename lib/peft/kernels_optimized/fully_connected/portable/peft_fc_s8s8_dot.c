/* peft_fc_s8s8_dot4 / _dot4x2 in plain C (cores without the DSP extension,
 * the host). */
#include "../peft_fc_s8s8_dot.h"

void peft_fc_s8s8_dot4(int32_t n, const int16_t *w, const int16_t *q, int32_t *acc)
{
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];

	for (int32_t k = 0; k < n; k += 2) {
		const int32_t g = q[k], g1 = q[k + 1];

		a0 += w[0] * g + w[1] * g1;
		a1 += w[2] * g + w[3] * g1;
		a2 += w[4] * g + w[5] * g1;
		a3 += w[6] * g + w[7] * g1;
		w += 8;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *w, const int16_t *q0, const int16_t *q1,
			 int32_t *acc0, int32_t *acc1)
{
	peft_fc_s8s8_dot4(n, w, q0, acc0);
	peft_fc_s8s8_dot4(n, w, q1, acc1);
}
