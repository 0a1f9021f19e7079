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

/* The 8 products of a pass (4 features x the pair of outputs) go to 8 lanes,
 * added pairwise at the end (int32 sums are exact in any order): a host
 * vectorizes the pass into one widening multiply of 8 lanes. */
void peft_fc_s8s8_dot4(int32_t n, const int16_t *cols, const int16_t *q, int32_t *acc)
{
	int32_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};

	for (int32_t k = 0; k < n; k += 2) {
		for (int32_t l = 0; l < 8; l++) {
			lanes[l] += (int32_t)cols[l] * q[k + (l & 1)];
		}
		cols += 8;
	}
	for (int32_t j = 0; j < 4; j++) {
		acc[j] += lanes[2 * j] + lanes[2 * j + 1];
	}
}

void peft_fc_s8s8_dot4x2(int32_t n, const int16_t *cols, const int16_t *q2, int32_t *acc0,
			 int32_t *acc1)
{
	int32_t lanes0[8] = {0, 0, 0, 0, 0, 0, 0, 0}, lanes1[8] = {0, 0, 0, 0, 0, 0, 0, 0};

	for (int32_t k = 0; k < n; k += 2) {
		for (int32_t l = 0; l < 8; l++) {
			lanes0[l] += (int32_t)cols[l] * q2[2 * k + (l & 1)];
			lanes1[l] += (int32_t)cols[l] * q2[2 * k + 2 + (l & 1)];
		}
		cols += 8;
	}
	for (int32_t j = 0; j < 4; j++) {
		acc0[j] += lanes0[2 * j] + lanes0[2 * j + 1];
		acc1[j] += lanes1[2 * j] + lanes1[2 * j + 1];
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
