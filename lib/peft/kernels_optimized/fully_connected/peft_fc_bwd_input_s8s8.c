/* FULLY_CONNECTED input gradient, int8 path, optimized backend (same contract
 * and identical results as kernels/fully_connected/peft_fc_bwd_input_s8s8.c).
 * PEFT_S8S8_ROWS rows (or all of a smaller call) are quantized at once into
 * the scratch, two rows interleaved by output pairs as peft_fc_s8s8_dot4x2
 * reads them; then, 4 input features at a time, the 4 weight columns are
 * widened once into int16 pairs (peft_fc_s8s8_dot.h's layout), read by every
 * row of the chunk, two rows per pass (SXTB16 and SMLAD on cores with the DSP
 * extension). A call of one row skips the widening: it reads the weights
 * where they lie. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"
#include "peft_fc_s8s8_dot.h"

int32_t peft_fc_bwd_input_s8s8_get_buffer_size(const peft_fc_params *p)
{
	return peft_fc_params_ok(p) ? peft_s8s8_scratch_bytes(p) : 0;
}

static void put(float *y, int32_t acc, float s, bool add)
{
	*y = add ? *y + (float)acc * s : (float)acc * s;
}

/* peft_fc_s8s8_widen4 for the last nc < 4 input features (a word there could
 * lie past the weights): 0 for j >= nc. */
static void widen_tail(const int8_t *w, int32_t n_in, int32_t n_out, int32_t nc, int16_t *cols)
{
	const int32_t pairs = n_out + n_out % 2;

	for (int32_t o = 0; o < pairs; o++) {
		for (int32_t j = 0; j < 4; j++) {
			cols[(o / 2) * 8 + j * 2 + o % 2] =
				o < n_out && j < nc ? w[o * n_in + j] : 0;
		}
	}
}

/* q2 (peft_fc_s8s8_dot4x2's layout) = rows a and b of n values each (n even). */
static void interleave_rows(int32_t n, const int16_t *a, const int16_t *b, int16_t *q2)
{
	for (int32_t k = 0; k < n; k += 2) {
		q2[2 * k] = a[k];
		q2[2 * k + 1] = a[k + 1];
		q2[2 * k + 2] = b[k];
		q2[2 * k + 3] = b[k + 1];
	}
}

/* One row without widening (peft_fc_s8s8_dot4_direct): acc[j] += sum over o
 * of w(o, j) * q[o], j < nc, the last output of an odd count and features
 * past the last full 4 by plain products. */
static void one_row(const int8_t *w, int32_t n_in, int32_t n_out, int32_t nc, const int16_t *q,
		    int32_t *acc)
{
	int32_t o = 0;

	if (nc == 4) {
		peft_fc_s8s8_dot4_direct(n_out / 2, w, n_in, q, acc);
		o = n_out - n_out % 2;
	}
	for (; o < n_out; o++) {
		for (int32_t j = 0; j < nc; j++) {
			acc[j] += (int32_t)w[o * n_in + j] * q[o];
		}
	}
}

peft_status peft_fc_bwd_input_s8s8(const peft_fc_params *p, const peft_weights_s8 *w,
				   const float *grad_out, float *grad_in, bool accumulate,
				   int16_t *scratch, int32_t scratch_bytes)
{
	if (!peft_s8s8_args_ok(p, w, grad_out, grad_in, scratch, scratch_bytes)) {
		return PEFT_ERR_ARG;
	}
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	const int32_t pairs = n_out + n_out % 2;
	const peft_wsrc src = peft_wsrc_s8(w);
	const int32_t chunk = peft_s8s8_chunk_rows(p);
	int16_t *q = scratch;                                /* [chunk][pairs] */
	int16_t *cols = q + chunk * pairs;                   /* [4][pairs] */
	float *scales = (float *)(void *)(cols + 4 * pairs); /* [chunk] */

	for (int32_t r0 = 0; r0 < p->rows; r0 += chunk) {
		const int32_t nr = p->rows - r0 < chunk ? p->rows - r0 : chunk;
		int32_t r = 0;

		/* Rows r, r + 1 interleaved at q + r * pairs (quantized first into
		 * cols, free until the widening); a last odd row as it is. */
		for (; r + 2 <= nr; r += 2) {
			const float *g = grad_out + (r0 + r) * n_out;

			scales[r] = peft_quantize_grad_row(n_out, g, &src, cols);
			scales[r + 1] =
				peft_quantize_grad_row(n_out, g + n_out, &src, cols + pairs);
			interleave_rows(pairs, cols, cols + pairs, q + r * pairs);
		}
		if (r < nr) {
			scales[r] = peft_quantize_grad_row(n_out, grad_out + (r0 + r) * n_out, &src,
							   q + r * pairs);
		}
		for (int32_t i0 = 0; i0 < n_in; i0 += 4) {
			const int32_t nc = n_in - i0 < 4 ? n_in - i0 : 4;

			if (nr == 1) {
				int32_t acc[4] = {0, 0, 0, 0};
				float *gi = grad_in + r0 * n_in + i0;

				one_row(w->data + i0, n_in, n_out, nc, q, acc);
				for (int32_t j = 0; j < nc; j++) {
					put(gi + j, acc[j], scales[0], accumulate);
				}
				continue;
			}
			if (nc == 4) {
				peft_fc_s8s8_widen4(n_out, w->data + i0, n_in, cols);
			} else {
				widen_tail(w->data + i0, n_in, n_out, nc, cols);
			}
			for (r = 0; r + 2 <= nr; r += 2) {
				int32_t acc0[4] = {0, 0, 0, 0}, acc1[4] = {0, 0, 0, 0};
				float *gi0 = grad_in + (r0 + r) * n_in + i0;
				float *gi1 = gi0 + n_in;

				peft_fc_s8s8_dot4x2(pairs, cols, q + r * pairs, acc0, acc1);
				for (int32_t j = 0; j < nc; j++) {
					put(gi0 + j, acc0[j], scales[r], accumulate);
					put(gi1 + j, acc1[j], scales[r + 1], accumulate);
				}
			}
			if (r < nr) {
				int32_t acc[4] = {0, 0, 0, 0};
				float *gi = grad_in + (r0 + r) * n_in + i0;

				peft_fc_s8s8_dot4(pairs, cols, q + r * pairs, acc);
				for (int32_t j = 0; j < nc; j++) {
					put(gi + j, acc[j], scales[r], accumulate);
				}
			}
		}
	}
	return PEFT_OK;
}
