/* One value's int8 code (private to lib/peft): shared by peft_quantize_s8 (both
 * backends) and the trainer's quantized forward, so that all round alike. */
#ifndef PEFT_QUANTIZE_H
#define PEFT_QUANTIZE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_kernels.h"

/* A usable affine int8 quantization (real = scale * (q - zero_point)). */
static inline bool peft_affine_ok(float scale, int32_t zero_point)
{
	return isfinite(scale) && scale > 0.0f && zero_point >= -128 && zero_point <= 127;
}

/* v clamped to [-256, 256]: beyond it every value ends at the same int8
 * clamp, and within it v truncates exactly through int32 (out-of-range float
 * to int conversion is undefined). The first half of peft_s8_code. */
static inline float peft_s8_clamp(float v)
{
	return v < -256.0f ? -256.0f : v > 256.0f ? 256.0f : v;
}

/* The code of a value peft_s8_clamp has clamped (its second half). */
static inline float peft_s8_code_clamped(float c, int32_t zero_point)
{
	const float t = (float)(int32_t)c;
	const float q = t + (float)(int32_t)(2.0f * (c - t)) + (float)zero_point;

	return q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q;
}

/* round(v) + zero_point clamped to [-128, 127], as a float (v: the value over
 * its scale, not NaN), rounding halves away from zero (TfLiteRound, roundf)
 * without a libm call or a branch, so that loops over it vectorize on hosts and
 * stay inline on the M4: the clamped v truncates to t; its fraction v - t and
 * twice that are exact, and twice a fraction of at least one half truncates to
 * +-1, the step away from zero (test_quantize_rounds_as_roundf holds it to
 * roundf on both sides of every integer and half-integer up to +-300). */
static inline float peft_s8_code(float v, int32_t zero_point)
{
	return peft_s8_code_clamped(peft_s8_clamp(v), zero_point);
}

/* 1 where some in[i] is NaN (a scan without an early exit: it vectorizes). */
static inline bool peft_any_nan(int32_t n, const float *in)
{
	int32_t seen = 0;

	for (int32_t i = 0; i < n; i++) {
		seen |= in[i] != in[i];
	}
	return seen != 0;
}

/* peft_quantize_s8's argument and NaN checks, shared by both backends:
 * PEFT_ERR_ARG for a bad argument, PEFT_ERR_NUMERIC when some value is NaN (it
 * has no int8 code; nothing is written then; infinities clamp), else PEFT_OK. */
static inline peft_status peft_quantize_check(int32_t n, const float *in, float scale,
					      int32_t zero_point, const int8_t *out)
{
	if (n <= 0 || in == NULL || out == NULL || !peft_affine_ok(scale, zero_point)) {
		return PEFT_ERR_ARG;
	}
	return peft_any_nan(n, in) ? PEFT_ERR_NUMERIC : PEFT_OK;
}

#endif /* PEFT_QUANTIZE_H */
