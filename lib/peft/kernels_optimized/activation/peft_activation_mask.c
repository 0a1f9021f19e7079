/* The fused activation with its 1-bit derivative (peft_activation_mask.h),
 * optimized backend (same contract and results as
 * kernels/activation/peft_activation_mask.c). The M4's FPU has no min or max,
 * so the clamp and the mask test run on a float's bits as an unsigned
 * integer, whose order is the values' order from +0 up to +inf: above +inf
 * lie NaN and every negative value (sign bit set), which ReLU and ReLU6 map to
 * +0 as the reference does (NaN > 0 is false). Eight elements per mask byte,
 * no branch per element. Where the lanes are a vector (PEFT_F4_VECTOR: hosts)
 * a byte's eight elements are a loop that GCC turns into vector code, and
 * backward clears a gradient with an AND of its bits; on the M4 the eight are
 * written out (GCC would branch in that loop) and backward stores +0 under a
 * condition, with no load. */
#include <stddef.h>
#include <string.h>

#include "../../kernels/activation/peft_activation_mask.h"
#include "../peft_kernel_blocks.h"
#include "peft/peft_kernels.h"

#define PEFT_BITS_SIX 0x40C00000u /* 6.0f */
#define PEFT_BITS_INF 0x7F800000u /* +inf */

/* Element j of x: act(x[j]) in place (hi: the largest value kept, 6 or +inf),
 * and bit j of the mask byte where act' = 1 (0 < y, y < 6 for ReLU6: y - 1 <
 * lim on the clamped bits). Called with constant j, it inlines to a handful of
 * conditional moves. */
static inline uint32_t act_one(float *x, int32_t j, uint32_t hi, uint32_t lim)
{
	uint32_t b;

	memcpy(&b, x + j, sizeof(b));
	/* sign set (negative, -0, -NaN): 0; then +NaN: 0; then above hi: hi */
	uint32_t y = b & ~(uint32_t)((int32_t)b >> 31);

	y = y > PEFT_BITS_INF ? 0u : y;
	y = y > hi ? hi : y;
	memcpy(x + j, &y, sizeof(y));
	return (uint32_t)(y - 1u < lim) << j;
}

/* Bytes 0..bytes - 1 of the mask and their 8 elements each, as a loop over
 * bytes of a loop over their elements (hosts vectorize it across bytes). */
static void fwd_bytes_vector(int32_t bytes, float *restrict x, uint8_t *restrict mask, uint32_t hi,
			     uint32_t lim)
{
	for (int32_t b = 0; b < bytes; b++) {
		uint32_t bits = 0;

		for (int32_t j = 0; j < 8; j++) {
			bits |= act_one(x + 8 * b, j, hi, lim);
		}
		mask[b] = (uint8_t)bits;
	}
}

peft_status peft_activation_fwd_mask_f32(peft_activation act, int32_t n, float *x, uint8_t *mask)
{
	if (!peft_activation_ok(act) || act == PEFT_ACT_NONE || n <= 0 || x == NULL ||
	    mask == NULL) {
		return PEFT_ERR_ARG;
	}
	const uint32_t hi = act == PEFT_ACT_RELU6 ? PEFT_BITS_SIX : PEFT_BITS_INF;
	const uint32_t lim = act == PEFT_ACT_RELU6 ? PEFT_BITS_SIX - 1u : PEFT_BITS_INF;
	int32_t i = 0;

	if (PEFT_F4_VECTOR) {
		fwd_bytes_vector(n / 8, x, mask, hi, lim);
		i = n - n % 8;
	}
	for (; i + 8 <= n; i += 8) {
		float *p = x + i;

		mask[i / 8] = (uint8_t)(act_one(p, 0, hi, lim) | act_one(p, 1, hi, lim) |
					act_one(p, 2, hi, lim) | act_one(p, 3, hi, lim) |
					act_one(p, 4, hi, lim) | act_one(p, 5, hi, lim) |
					act_one(p, 6, hi, lim) | act_one(p, 7, hi, lim));
	}
	if (i < n) {
		uint32_t bits = 0;

		for (int32_t j = 0; i + j < n; j++) {
			bits |= act_one(x + i, j, hi, lim);
		}
		mask[i / 8] = (uint8_t)bits;
	}
	return PEFT_OK;
}

/* A cleared mask bit stores +0 (the reference's 0.0f) over the gradient; a set
 * one leaves it: no load, one test and one conditional store per element. */
static inline void keep_one(float *grad, int32_t j, uint32_t bits)
{
	if ((bits & (1u << j)) == 0u) {
		grad[j] = 0.0f;
	}
}

/* The gradients of mask bytes 0..bytes - 1, each ANDed with its bit spread
 * over the word (hosts vectorize it across bytes). */
static void bwd_bytes_vector(int32_t bytes, const uint8_t *restrict mask, float *restrict grad)
{
	for (int32_t b = 0; b < bytes; b++) {
		const uint32_t bits = mask[b];

		for (int32_t j = 0; j < 8; j++) {
			uint32_t u;

			memcpy(&u, grad + 8 * b + j, sizeof(u));
			u &= -((bits >> j) & 1u);
			memcpy(grad + 8 * b + j, &u, sizeof(u));
		}
	}
}

peft_status peft_activation_bwd_mask_f32(int32_t n, const uint8_t *mask, float *grad)
{
	if (n <= 0 || mask == NULL || grad == NULL) {
		return PEFT_ERR_ARG;
	}
	int32_t i = 0;

	if (PEFT_F4_VECTOR) {
		bwd_bytes_vector(n / 8, mask, grad);
		i = n - n % 8;
	}
	for (; i + 8 <= n; i += 8) {
		const uint32_t bits = mask[i / 8];
		float *g = grad + i;

		keep_one(g, 0, bits);
		keep_one(g, 1, bits);
		keep_one(g, 2, bits);
		keep_one(g, 3, bits);
		keep_one(g, 4, bits);
		keep_one(g, 5, bits);
		keep_one(g, 6, bits);
		keep_one(g, 7, bits);
	}
	for (; i < n; i++) {
		keep_one(grad + i - i % 8, i % 8, mask[i / 8]);
	}
	return PEFT_OK;
}
