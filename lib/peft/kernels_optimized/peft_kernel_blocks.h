/* Register-blocked inner kernels of the optimized backend (private to
 * lib/peft/kernels_optimized). Each computes a block of sums
 *   acc[p][q] += sum over k of a_p[k] * b_q[k]
 * with the block's accumulators in registers (4 x 4 = 16 on a Cortex-M4F,
 * whose FPU has 32 single registers), so that every value loaded from memory
 * feeds 4 multiply-adds. Int8 weights are converted to float once per load,
 * that is once per block row, not once per multiply-add. Sums run over k in
 * order (the reference kernels' order); `acc` is read once and written once.
 *
 * How the operands are laid out picks the kernel:
 * - pp: a_p = a + p * a_lane and b_q = b + q * b_lane, both read forward
 *   (k contiguous); after each of `segs` segments of n values, a skips a_jump
 *   and b skips b_jump elements (the rows of a convolution window).
 * - pc: a_p = a + p * a_lane read forward; b_q[k] = b[k * b_step + q], four
 *   contiguous values per k (the input gradient: weights read across rows),
 *   each scaled by s[k * s_step] (1 when s is NULL).
 * - cc: a_p[k] = a[k * a_step + p], b_q[k] = b[k * b_step + q] (the weight
 *   gradient: both read across rows).
 * Blocks of fewer lanes use the _1x4 / _4x1 variants or the scalar tail. */
#ifndef PEFT_KERNEL_BLOCKS_H
#define PEFT_KERNEL_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEFT_MAC4(c0, c1, c2, c3, x)                                                               \
	do {                                                                                       \
		c0 += (x) * w0;                                                                    \
		c1 += (x) * w1;                                                                    \
		c2 += (x) * w2;                                                                    \
		c3 += (x) * w3;                                                                    \
	} while (0)

#define PEFT_LOAD_ACC16(acc)                                                                       \
	float c00 = acc[0], c01 = acc[1], c02 = acc[2], c03 = acc[3];                              \
	float c10 = acc[4], c11 = acc[5], c12 = acc[6], c13 = acc[7];                              \
	float c20 = acc[8], c21 = acc[9], c22 = acc[10], c23 = acc[11];                            \
	float c30 = acc[12], c31 = acc[13], c32 = acc[14], c33 = acc[15]

#define PEFT_STORE_ACC16(acc)                                                                      \
	do {                                                                                       \
		acc[0] = c00, acc[1] = c01, acc[2] = c02, acc[3] = c03;                            \
		acc[4] = c10, acc[5] = c11, acc[6] = c12, acc[7] = c13;                            \
		acc[8] = c20, acc[9] = c21, acc[10] = c22, acc[11] = c23;                          \
		acc[12] = c30, acc[13] = c31, acc[14] = c32, acc[15] = c33;                        \
	} while (0)

/* pp, 4 x 4, float b. */
static inline void peft_blk_pp4x4_f32(int32_t segs, int32_t n, const float *a, int32_t a_lane,
				      int32_t a_jump, const float *b, int32_t b_lane,
				      int32_t b_jump, float *acc)
{
	PEFT_LOAD_ACC16(acc);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;
	const float *b0 = b, *b1 = b + b_lane, *b2 = b + 2 * b_lane, *b3 = b + 3 * b_lane;

	for (int32_t s = 0; s < segs; s++) {
		for (int32_t k = 0; k < n; k++) {
			const float w0 = *b0++, w1 = *b1++, w2 = *b2++, w3 = *b3++;
			const float x0 = *a0++, x1 = *a1++, x2 = *a2++, x3 = *a3++;

			PEFT_MAC4(c00, c01, c02, c03, x0);
			PEFT_MAC4(c10, c11, c12, c13, x1);
			PEFT_MAC4(c20, c21, c22, c23, x2);
			PEFT_MAC4(c30, c31, c32, c33, x3);
		}
		a0 += a_jump, a1 += a_jump, a2 += a_jump, a3 += a_jump;
		b0 += b_jump, b1 += b_jump, b2 += b_jump, b3 += b_jump;
	}
	PEFT_STORE_ACC16(acc);
}

/* pp, 4 x 4, int8 b (raw values; the caller scales). */
static inline void peft_blk_pp4x4_s8(int32_t segs, int32_t n, const float *a, int32_t a_lane,
				     int32_t a_jump, const int8_t *b, int32_t b_lane,
				     int32_t b_jump, float *acc)
{
	PEFT_LOAD_ACC16(acc);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;
	const int8_t *b0 = b, *b1 = b + b_lane, *b2 = b + 2 * b_lane, *b3 = b + 3 * b_lane;

	for (int32_t s = 0; s < segs; s++) {
		for (int32_t k = 0; k < n; k++) {
			const float w0 = (float)*b0++, w1 = (float)*b1++;
			const float w2 = (float)*b2++, w3 = (float)*b3++;
			const float x0 = *a0++, x1 = *a1++, x2 = *a2++, x3 = *a3++;

			PEFT_MAC4(c00, c01, c02, c03, x0);
			PEFT_MAC4(c10, c11, c12, c13, x1);
			PEFT_MAC4(c20, c21, c22, c23, x2);
			PEFT_MAC4(c30, c31, c32, c33, x3);
		}
		a0 += a_jump, a1 += a_jump, a2 += a_jump, a3 += a_jump;
		b0 += b_jump, b1 += b_jump, b2 += b_jump, b3 += b_jump;
	}
	PEFT_STORE_ACC16(acc);
}

/* pp, 1 x 4 (one row of a: batch-1 fully connected, window edges). */
static inline void peft_blk_pp1x4_f32(int32_t segs, int32_t n, const float *a, int32_t a_jump,
				      const float *b, int32_t b_lane, int32_t b_jump, float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];
	const float *b0 = b, *b1 = b + b_lane, *b2 = b + 2 * b_lane, *b3 = b + 3 * b_lane;

	for (int32_t s = 0; s < segs; s++) {
		for (int32_t k = 0; k < n; k++) {
			const float w0 = *b0++, w1 = *b1++, w2 = *b2++, w3 = *b3++;
			const float x = *a++;

			PEFT_MAC4(c0, c1, c2, c3, x);
		}
		a += a_jump;
		b0 += b_jump, b1 += b_jump, b2 += b_jump, b3 += b_jump;
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

static inline void peft_blk_pp1x4_s8(int32_t segs, int32_t n, const float *a, int32_t a_jump,
				     const int8_t *b, int32_t b_lane, int32_t b_jump, float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];
	const int8_t *b0 = b, *b1 = b + b_lane, *b2 = b + 2 * b_lane, *b3 = b + 3 * b_lane;

	for (int32_t s = 0; s < segs; s++) {
		for (int32_t k = 0; k < n; k++) {
			const float w0 = (float)*b0++, w1 = (float)*b1++;
			const float w2 = (float)*b2++, w3 = (float)*b3++;
			const float x = *a++;

			PEFT_MAC4(c0, c1, c2, c3, x);
		}
		a += a_jump;
		b0 += b_jump, b1 += b_jump, b2 += b_jump, b3 += b_jump;
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

/* pc, 4 x 4: four a rows, four contiguous b values per k. */
static inline void peft_blk_pc4x4_f32(int32_t n, const float *a, int32_t a_lane, const float *b,
				      int32_t b_step, float *acc)
{
	PEFT_LOAD_ACC16(acc);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const float w0 = b[0], w1 = b[1], w2 = b[2], w3 = b[3];
		const float x0 = *a0++, x1 = *a1++, x2 = *a2++, x3 = *a3++;

		b += b_step;
		PEFT_MAC4(c00, c01, c02, c03, x0);
		PEFT_MAC4(c10, c11, c12, c13, x1);
		PEFT_MAC4(c20, c21, c22, c23, x2);
		PEFT_MAC4(c30, c31, c32, c33, x3);
	}
	PEFT_STORE_ACC16(acc);
}

/* pc, 4 x 4, int8 b times s[k * s_step] (the scale of row k of b). */
static inline void peft_blk_pc4x4_s8(int32_t n, const float *a, int32_t a_lane, const int8_t *b,
				     int32_t b_step, const float *s, int32_t s_step, float *acc)
{
	PEFT_LOAD_ACC16(acc);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const float sk = *s;
		const float w0 = (float)b[0] * sk, w1 = (float)b[1] * sk;
		const float w2 = (float)b[2] * sk, w3 = (float)b[3] * sk;
		const float x0 = *a0++, x1 = *a1++, x2 = *a2++, x3 = *a3++;

		b += b_step;
		s += s_step;
		PEFT_MAC4(c00, c01, c02, c03, x0);
		PEFT_MAC4(c10, c11, c12, c13, x1);
		PEFT_MAC4(c20, c21, c22, c23, x2);
		PEFT_MAC4(c30, c31, c32, c33, x3);
	}
	PEFT_STORE_ACC16(acc);
}

/* pc, 1 x 4: one a row. */
static inline void peft_blk_pc1x4_f32(int32_t n, const float *a, const float *b, int32_t b_step,
				      float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];

	for (int32_t k = 0; k < n; k++) {
		const float w0 = b[0], w1 = b[1], w2 = b[2], w3 = b[3];
		const float x = *a++;

		b += b_step;
		PEFT_MAC4(c0, c1, c2, c3, x);
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

static inline void peft_blk_pc1x4_s8(int32_t n, const float *a, const int8_t *b, int32_t b_step,
				     const float *s, int32_t s_step, float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];

	for (int32_t k = 0; k < n; k++) {
		const float x = *a++ * *s;
		const float w0 = (float)b[0], w1 = (float)b[1], w2 = (float)b[2], w3 = (float)b[3];

		b += b_step;
		s += s_step;
		PEFT_MAC4(c0, c1, c2, c3, x);
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

/* pc, 4 x 1: four a rows, one b value per k (a single channel: the stem). */
static inline void peft_blk_pc4x1_f32(int32_t n, const float *a, int32_t a_lane, const float *b,
				      int32_t b_step, float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const float w = *b;

		b += b_step;
		c0 += *a0++ * w;
		c1 += *a1++ * w;
		c2 += *a2++ * w;
		c3 += *a3++ * w;
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

static inline void peft_blk_pc4x1_s8(int32_t n, const float *a, int32_t a_lane, const int8_t *b,
				     int32_t b_step, const float *s, int32_t s_step, float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const float w = (float)*b * *s;

		b += b_step;
		s += s_step;
		c0 += *a0++ * w;
		c1 += *a1++ * w;
		c2 += *a2++ * w;
		c3 += *a3++ * w;
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

/* cc, 4 x 4: a and b both read across rows, four contiguous values each. */
static inline void peft_blk_cc4x4_f32(int32_t n, const float *a, int32_t a_step, const float *b,
				      int32_t b_step, float *acc)
{
	PEFT_LOAD_ACC16(acc);

	for (int32_t k = 0; k < n; k++) {
		const float w0 = b[0], w1 = b[1], w2 = b[2], w3 = b[3];
		const float x0 = a[0], x1 = a[1], x2 = a[2], x3 = a[3];

		a += a_step;
		b += b_step;
		PEFT_MAC4(c00, c01, c02, c03, x0);
		PEFT_MAC4(c10, c11, c12, c13, x1);
		PEFT_MAC4(c20, c21, c22, c23, x2);
		PEFT_MAC4(c30, c31, c32, c33, x3);
	}
	PEFT_STORE_ACC16(acc);
}

/* acc[p * nq + q] += sum over k of a[k * a_step + p] * b[k * b_step + q]: the
 * scalar tail of a cc block with np x nq <= 4 x 4 lanes. */
static inline void peft_blk_cc_tail_f32(int32_t n, int32_t np, int32_t nq, const float *a,
					int32_t a_step, const float *b, int32_t b_step, float *acc)
{
	for (int32_t p = 0; p < np; p++) {
		for (int32_t q = 0; q < nq; q++) {
			float c = acc[p * nq + q];

			for (int32_t k = 0; k < n; k++) {
				c += a[k * a_step + p] * b[k * b_step + q];
			}
			acc[p * nq + q] = c;
		}
	}
}

/* cc, 4 x 1: four contiguous a values and one b value per k. */
static inline void peft_blk_cc4x1_f32(int32_t n, const float *a, int32_t a_step, const float *b,
				      int32_t b_step, float *acc)
{
	float c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];

	for (int32_t k = 0; k < n; k++) {
		const float w = *b;

		c0 += a[0] * w;
		c1 += a[1] * w;
		c2 += a[2] * w;
		c3 += a[3] * w;
		a += a_step;
		b += b_step;
	}
	acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

/* Blocks of 4 over n >= 4 elements: the last block starts at n - 4 and
 * overlaps the one before it; its first (i - start) lanes were already done. */
static inline int32_t peft_blk_start(int32_t i, int32_t n)
{
	return i + 4 <= n ? i : n - 4;
}

static inline void peft_blk_zero(int32_t n, float *acc)
{
	for (int32_t i = 0; i < n; i++) {
		acc[i] = 0.0f;
	}
}

/* y = acc, or y += acc when add is set (a finished sum, as the reference's). */
static inline void peft_blk_put(float *y, float acc, bool add)
{
	*y = add ? *y + acc : acc;
}

#endif /* PEFT_KERNEL_BLOCKS_H */
