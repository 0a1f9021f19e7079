/* The fused activation with its 1-bit mask (the backend's own
 * peft_activation_fwd_mask_f32) gives exactly peft_activation_fwd_f32's
 * output, and the mask-based backward exactly the gradient of the
 * activation-based one (peft_activation_bwd_f32 on the forward output), on
 * random values that include the kinks (0 and 6), -0, the infinities and NaN,
 * for every length 1..67 (partial last bytes). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../lib/peft/kernels/activation/peft_activation_mask.h"
#include "peft/peft_kernels.h"
#include "peft_test.h"

#define MAX_N 67

static uint32_t rng = 2463534242u;

static float random_value(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	switch (rng % 12u) {
	case 0:
		return 0.0f;
	case 1:
		return 6.0f;
	case 2:
		return -0.0f;
	case 3:
		return (rng & 256u) ? INFINITY : -INFINITY;
	case 4:
		return (rng & 256u) ? NAN : -NAN;
	default:
		return ((float)(rng >> 8) / 16777216.0f) * 16.0f - 8.0f;
	}
}

int main(void)
{
	const peft_activation acts[] = {PEFT_ACT_RELU, PEFT_ACT_RELU6};
	int cases = 0;

	for (int a = 0; a < 2; a++) {
		for (int32_t n = 1; n <= MAX_N; n++) {
			float x[MAX_N], fused[MAX_N], g_mask[MAX_N], g_act[MAX_N];
			uint8_t mask[(MAX_N + 7) / 8 + 1];

			for (int32_t i = 0; i < n; i++) {
				fused[i] = x[i] = random_value();
				g_mask[i] = g_act[i] = ((float)(rng >> 8) / 16777216.0f) - 0.5f;
				random_value();
			}
			mask[(n + 7) / 8] = 0xA5; /* guard byte: must stay untouched */
			PEFT_CHECK_EQ_INT(peft_activation_fwd_f32(acts[a], n, x), PEFT_OK);
			PEFT_CHECK_EQ_INT(peft_activation_fwd_mask_f32(acts[a], n, fused, mask),
					  PEFT_OK);
			PEFT_CHECK(memcmp(fused, x, (size_t)n * sizeof(float)) == 0);
			PEFT_CHECK_EQ_INT(peft_activation_bwd_f32(acts[a], n, x, g_act), PEFT_OK);
			PEFT_CHECK_EQ_INT(peft_activation_bwd_mask_f32(n, mask, g_mask), PEFT_OK);
			PEFT_CHECK(memcmp(g_mask, g_act, (size_t)n * sizeof(float)) == 0);
			PEFT_CHECK_EQ_INT(mask[(n + 7) / 8], 0xA5);
			cases++;
		}
	}
	/* NONE has no derivative to keep; bad arguments are refused. */
	float y = 1.0f;
	uint8_t m = 0;

	PEFT_CHECK_EQ_INT(peft_activation_fwd_mask_f32(PEFT_ACT_NONE, 1, &y, &m), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_activation_fwd_mask_f32(PEFT_ACT_RELU, 0, &y, &m), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_activation_fwd_mask_f32(PEFT_ACT_RELU6, 1, &y, NULL), PEFT_ERR_ARG);
	PEFT_CHECK_EQ_INT(peft_activation_bwd_mask_f32(1, NULL, &y), PEFT_ERR_ARG);
	printf("fused forward == forward, mask-based backward == activation-based backward on "
	       "%d cases\n",
	       cases);
	return 0;
}
