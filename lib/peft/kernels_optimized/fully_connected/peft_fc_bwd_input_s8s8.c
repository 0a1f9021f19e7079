/* FULLY_CONNECTED input gradient, int8 path, optimized backend (same contract
 * and identical results as kernels/fully_connected/peft_fc_bwd_input_s8s8.c).
 * PEFT_S8S8_ROWS rows are quantized at once into the scratch; then, 4 input
 * features at a time, the 4 weight columns are widened once into contiguous
 * int16 rows, so that every row's sums are contiguous dot products
 * (peft_fc_s8s8_dot4: SMLAD on cores with the DSP extension). */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"
#include "peft_fc_s8s8_dot.h"

int32_t peft_fc_bwd_input_s8s8_get_buffer_size(const peft_fc_params *p)
{
	return peft_fc_params_ok(p) ? peft_s8s8_scratch_bytes(p->out_features) : 0;
}

static void put(float *y, int32_t acc, float s, bool add)
{
	*y = add ? *y + (float)acc * s : (float)acc * s;
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
	int16_t *q = scratch;                                /* [PEFT_S8S8_ROWS][pairs] */
	int16_t *cols = q + PEFT_S8S8_ROWS * pairs;          /* [4][pairs] */
	float *scales = (float *)(void *)(cols + 4 * pairs); /* [PEFT_S8S8_ROWS] */

	for (int32_t r0 = 0; r0 < p->rows; r0 += PEFT_S8S8_ROWS) {
		const int32_t nr = p->rows - r0 < PEFT_S8S8_ROWS ? p->rows - r0 : PEFT_S8S8_ROWS;

		for (int32_t r = 0; r < nr; r++) {
			scales[r] = peft_quantize_grad_row(n_out, grad_out + (r0 + r) * n_out, &src,
							   q + r * pairs);
		}
		for (int32_t i0 = 0; i0 < n_in; i0 += 4) {
			const int32_t nc = n_in - i0 < 4 ? n_in - i0 : 4;

			for (int32_t j = 0; j < 4; j++) {
				int16_t *col = cols + j * pairs;

				for (int32_t o = 0; o < n_out; o++) {
					col[o] = j < nc ? w->data[o * n_in + i0 + j] : 0;
				}
				if (pairs > n_out) {
					col[n_out] = 0;
				}
			}
			for (int32_t r = 0; r < nr; r++) {
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
