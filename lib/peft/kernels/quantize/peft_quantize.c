/* Affine int8 quantization, real = scale * (q - zero_point), with TFLite's
 * formulas: q = round(x / scale) + zero_point, rounding half away from zero
 * (TfLiteRound, i.e. roundf) and clamped to [-128, 127]; dequantization is
 * scale * (q - zero_point). */
#include <math.h>
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_quantize.h"

static bool affine_ok(float scale, int32_t zero_point)
{
	return isfinite(scale) && scale > 0.0f && zero_point >= -128 && zero_point <= 127;
}

peft_status peft_quantize_s8(int32_t n, const float *in, float scale, int32_t zero_point,
			     int8_t *out)
{
	if (n <= 0 || in == NULL || out == NULL || !affine_ok(scale, zero_point)) {
		return PEFT_ERR_ARG;
	}
	/* NaN has no int8 value; refuse before writing anything. Infinities clamp.
	 * (A scan without an early exit: it vectorizes.) */
	bool nan_seen = false;

	for (int32_t i = 0; i < n; i++) {
		nan_seen |= isnan(in[i]);
	}
	if (nan_seen) {
		return PEFT_ERR_NUMERIC;
	}
	for (int32_t i = 0; i < n; i++) {
		out[i] = (int8_t)peft_s8_code(in[i] / scale, zero_point);
	}
	return PEFT_OK;
}

peft_status peft_dequantize_s8(int32_t n, const int8_t *in, float scale, int32_t zero_point,
			       float *out)
{
	if (n <= 0 || in == NULL || out == NULL || !affine_ok(scale, zero_point)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		out[i] = scale * (float)((int32_t)in[i] - zero_point);
	}
	return PEFT_OK;
}
