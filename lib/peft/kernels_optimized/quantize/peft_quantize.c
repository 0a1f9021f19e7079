/* Affine int8 quantization, optimized backend (same contract and codes as
 * kernels/quantize/peft_quantize.c). In one loop GCC moves the code's work
 * into the branch of the unclamped values (the clamped ones fold to
 * constants), and a loop with branches does not vectorize; two loops over a
 * chunk on the stack, the scaled and clamped values first, then their codes,
 * vectorize on hosts (8 or 16 lanes) and cost the M4 a store and a load per
 * value beside its division. */
#include <stddef.h>

#include "../../kernels/quantize/peft_quantize.h"
#include "peft/peft_kernels.h"

#define PEFT_QUANTIZE_CHUNK 64

peft_status peft_quantize_s8(int32_t n, const float *in, float scale, int32_t zero_point,
			     int8_t *out)
{
	const peft_status st = peft_quantize_check(n, in, scale, zero_point, out);

	if (st != PEFT_OK) {
		return st;
	}
	float clamped[PEFT_QUANTIZE_CHUNK];

	for (int32_t i0 = 0; i0 < n; i0 += PEFT_QUANTIZE_CHUNK) {
		const int32_t m = n - i0 < PEFT_QUANTIZE_CHUNK ? n - i0 : PEFT_QUANTIZE_CHUNK;

		for (int32_t j = 0; j < m; j++) {
			clamped[j] = peft_s8_clamp(in[i0 + j] / scale);
		}
		for (int32_t j = 0; j < m; j++) {
			out[i0 + j] = (int8_t)peft_s8_code_clamped(clamped[j], zero_point);
		}
	}
	return PEFT_OK;
}
