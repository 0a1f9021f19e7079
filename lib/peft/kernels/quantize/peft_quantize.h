/* One value's int8 code (private to lib/peft): shared by peft_quantize_s8 and
 * the trainer's quantized forward, so that both round alike. */
#ifndef PEFT_QUANTIZE_H
#define PEFT_QUANTIZE_H

#include <math.h>
#include <stdint.h>

/* round(v) + zero_point clamped to [-128, 127], as a float (v: the value over
 * its scale, not NaN). roundf rounds halves away from zero (TfLiteRound); the
 * clamp is in float, since converting an out-of-range float to int is undefined. */
static inline float peft_s8_code(float v, int32_t zero_point)
{
	const float q = roundf(v) + (float)zero_point;

	return q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q;
}

#endif /* PEFT_QUANTIZE_H */
