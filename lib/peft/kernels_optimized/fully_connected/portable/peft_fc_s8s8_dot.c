/* peft_fc_s8s8_dot4 in plain C (cores without the DSP extension, the host). */
#include "../peft_fc_s8s8_dot.h"

void peft_fc_s8s8_dot4(int32_t n, const int16_t *w, const int16_t *q, int32_t *acc)
{
	const int16_t *w0 = w, *w1 = w + n, *w2 = w + 2 * n, *w3 = w + 3 * n;
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];

	for (int32_t k = 0; k < n; k++) {
		const int32_t g = q[k];

		a0 += w0[k] * g;
		a1 += w1[k] * g;
		a2 += w2[k] * g;
		a3 += w3[k] * g;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}
