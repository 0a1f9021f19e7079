/* Affine int8 dequantization, real = scale * (q - zero_point) (one file of its
 * own: the optimized backend replaces peft_quantize.c only). */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_quantize.h"

peft_status peft_dequantize_s8(int32_t n, const int8_t *in, float scale, int32_t zero_point,
			       float *out)
{
	if (n <= 0 || in == NULL || out == NULL || !peft_affine_ok(scale, zero_point)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		out[i] = scale * (float)((int32_t)in[i] - zero_point);
	}
	return PEFT_OK;
}
