/* Affine int8 quantization, real = scale * (q - zero_point), with TFLite's
 * formula: q = round(x / scale) + zero_point, rounding half away from zero
 * (TfLiteRound, i.e. roundf) and clamped to [-128, 127]. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_quantize.h"

peft_status peft_quantize_s8(int32_t n, const float *in, float scale, int32_t zero_point,
			     int8_t *out)
{
	const peft_status st = peft_quantize_check(n, in, scale, zero_point, out);

	if (st != PEFT_OK) {
		return st;
	}
	for (int32_t i = 0; i < n; i++) {
		out[i] = (int8_t)peft_s8_code(in[i] / scale, zero_point);
	}
	return PEFT_OK;
}
