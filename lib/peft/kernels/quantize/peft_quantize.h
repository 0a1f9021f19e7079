/* One value's int8 code (private to lib/peft): shared by peft_quantize_s8 and
 * the trainer's quantized forward, so that both round alike. */
#ifndef PEFT_QUANTIZE_H
#define PEFT_QUANTIZE_H

#include <math.h>
#include <stdint.h>

/* round(v) + zero_point clamped to [-128, 127], as a float (v: the value over
 * its scale, not NaN), rounding halves away from zero (TfLiteRound, roundf)
 * without a libm call, so that loops over it vectorize on hosts and stay inline
 * on the M4: beyond +-256 every value ends at the same clamp, so v is clamped
 * there first and then truncates exactly through int32; its fraction v - t is
 * exact, and a fraction of at least one half rounds away from zero. The result
 * equals roundf(v) + zero_point clamped in float (out-of-range float to int
 * conversion is undefined, hence no int arithmetic before the clamp). */
static inline float peft_s8_code(float v, int32_t zero_point)
{
	const float c = v < -256.0f ? -256.0f : v > 256.0f ? 256.0f : v;
	const float t = (float)(int32_t)c;
	const float d = c - t;
	const float up = t + 1.0f, down = t - 1.0f; /* both computed: the choice is a select */
	const float r = d >= 0.5f ? up : d <= -0.5f ? down : t;
	const float q = r + (float)zero_point;

	return q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q;
}

#endif /* PEFT_QUANTIZE_H */
