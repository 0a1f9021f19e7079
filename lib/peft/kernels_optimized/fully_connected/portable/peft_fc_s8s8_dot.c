/* peft_fc_s8s8_dot.h's loops in plain C (cores without the DSP extension,
 * the host). */
#include "../peft_fc_s8s8_dot.h"

void peft_fc_s8s8_widen4(int32_t n_out, const int8_t *w, int32_t n_in, int16_t *cols)
{
	for (int32_t o = 0; o < n_out; o++) {
		int16_t *dst = cols + (o / 2) * 8 + o % 2;

		for (int32_t j = 0; j < 4; j++) {
			dst[2 * j] = w[o * n_in + j];
		}
	}
	if (n_out % 2 != 0) {
		for (int32_t j = 0; j < 4; j++) {
			cols[(n_out / 2) * 8 + 2 * j + 1] = 0;
		}
	}
}

void peft_fc_s8s8_dot4(int32_t n, const int16_t *cols, const int16_t *q, int32_t *acc)
{
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];

	for (int32_t k = 0; k < n; k += 2) {
		const int32_t g = q[k], g1 = q[k + 1];

		a0 += cols[0] * g + cols[1] * g1;
		a1 += cols[2] * g + cols[3] * g1;
		a2 += cols[4] * g + cols[5] * g1;
		a3 += cols[6] * g + cols[7] * g1;
		cols += 8;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *cols, const int16_t *q2, int32_t *acc0,
			 int32_t *acc1)
{
	for (int32_t k = 0; k < n; k += 2) {
		peft_fc_s8s8_dot4(2, cols, q2, acc0);
		peft_fc_s8s8_dot4(2, cols, q2 + 2, acc1);
		cols += 8;
		q2 += 4;
	}
}

void peft_fc_s8s8_dot4_direct(int32_t n_pairs, const int8_t *w, int32_t n_in, const int16_t *q,
			      int32_t *acc)
{
	int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];

	for (int32_t o = 0; o < 2 * n_pairs; o++) {
		const int32_t g = q[o];

		a0 += w[0] * g;
		a1 += w[1] * g;
		a2 += w[2] * g;
		a3 += w[3] * g;
		w += n_in;
	}
	acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}
