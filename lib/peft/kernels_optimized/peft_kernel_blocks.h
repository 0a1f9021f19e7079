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
#include <string.h>

/* Four float lanes: the four sums of a block row. Where the target has SIMD
 * registers for floats (x86 SSE, Arm NEON: host builds) they are one vector, so
 * a row's four multiply-adds take one multiply and one add; the Cortex-M4F has
 * none, and there they are four scalars (GCC lowers a vector type to worse code
 * than four named floats). Either way every lane is computed by the same IEEE
 * operations in the same order, so the sums are the same. */
/* PEFT_SCALAR_LANES: the scalar lanes on a host too (a test build of the paths
 * the M4 takes). */
#if (defined(__SSE__) || defined(__ARM_NEON)) && !defined(PEFT_SCALAR_LANES)
/* 1 where the four lanes are one vector: a kernel may then copy float weights into a
 * tile (its four lanes load as one), which on a scalar core only adds the copy. */
#define PEFT_F4_VECTOR 1
typedef float peft_f4 __attribute__((vector_size(16)));

static inline peft_f4 peft_f4_load(const float *p)
{
	peft_f4 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void peft_f4_store(float *p, peft_f4 v)
{
	memcpy(p, &v, sizeof(v));
}

static inline peft_f4 peft_f4_zero(void)
{
	return (peft_f4){0.0f, 0.0f, 0.0f, 0.0f};
}

/* c + x * w, lane by lane (no contraction: -ffp-contract=off). */
static inline peft_f4 peft_f4_mac(peft_f4 c, float x, peft_f4 w)
{
	return c + x * w;
}

/* c * s + h, lane by lane. */
static inline peft_f4 peft_f4_scale_shift(peft_f4 c, peft_f4 s, peft_f4 h)
{
	return c * s + h;
}

static inline peft_f4 peft_f4_add(peft_f4 a, peft_f4 b)
{
	return a + b;
}

/* Four contiguous int8 values as floats, times s. */
static inline peft_f4 peft_f4_s8(const int8_t *p, float s)
{
	return (peft_f4){(float)p[0] * s, (float)p[1] * s, (float)p[2] * s, (float)p[3] * s};
}

static inline peft_f4 peft_f4_s8_raw(const int8_t *p)
{
	return (peft_f4){(float)p[0], (float)p[1], (float)p[2], (float)p[3]};
}
#else
#define PEFT_F4_VECTOR 0
typedef struct {
	float l0, l1, l2, l3;
} peft_f4;

static inline peft_f4 peft_f4_load(const float *p)
{
	return (peft_f4){p[0], p[1], p[2], p[3]};
}

static inline void peft_f4_store(float *p, peft_f4 v)
{
	p[0] = v.l0, p[1] = v.l1, p[2] = v.l2, p[3] = v.l3;
}

static inline peft_f4 peft_f4_zero(void)
{
	return (peft_f4){0.0f, 0.0f, 0.0f, 0.0f};
}

static inline peft_f4 peft_f4_mac(peft_f4 c, float x, peft_f4 w)
{
	return (peft_f4){c.l0 + x * w.l0, c.l1 + x * w.l1, c.l2 + x * w.l2, c.l3 + x * w.l3};
}

static inline peft_f4 peft_f4_scale_shift(peft_f4 c, peft_f4 s, peft_f4 h)
{
	return (peft_f4){c.l0 * s.l0 + h.l0, c.l1 * s.l1 + h.l1, c.l2 * s.l2 + h.l2,
			 c.l3 * s.l3 + h.l3};
}

static inline peft_f4 peft_f4_add(peft_f4 a, peft_f4 b)
{
	return (peft_f4){a.l0 + b.l0, a.l1 + b.l1, a.l2 + b.l2, a.l3 + b.l3};
}

static inline peft_f4 peft_f4_s8(const int8_t *p, float s)
{
	return (peft_f4){(float)p[0] * s, (float)p[1] * s, (float)p[2] * s, (float)p[3] * s};
}

static inline peft_f4 peft_f4_s8_raw(const int8_t *p)
{
	return (peft_f4){(float)p[0], (float)p[1], (float)p[2], (float)p[3]};
}
#endif

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
	peft_f4 c0 = peft_f4_load(acc), c1 = peft_f4_load(acc + 4);
	peft_f4 c2 = peft_f4_load(acc + 8), c3 = peft_f4_load(acc + 12);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const peft_f4 w = peft_f4_load(b);

		b += b_step;
		c0 = peft_f4_mac(c0, *a0++, w);
		c1 = peft_f4_mac(c1, *a1++, w);
		c2 = peft_f4_mac(c2, *a2++, w);
		c3 = peft_f4_mac(c3, *a3++, w);
	}
	peft_f4_store(acc, c0), peft_f4_store(acc + 4, c1);
	peft_f4_store(acc + 8, c2), peft_f4_store(acc + 12, c3);
}

/* pc, 4 x 4, int8 b times s[k * s_step] (the scale of row k of b). */
static inline void peft_blk_pc4x4_s8(int32_t n, const float *a, int32_t a_lane, const int8_t *b,
				     int32_t b_step, const float *s, int32_t s_step, float *acc)
{
	peft_f4 c0 = peft_f4_load(acc), c1 = peft_f4_load(acc + 4);
	peft_f4 c2 = peft_f4_load(acc + 8), c3 = peft_f4_load(acc + 12);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const peft_f4 w = peft_f4_s8(b, *s);

		b += b_step;
		s += s_step;
		c0 = peft_f4_mac(c0, *a0++, w);
		c1 = peft_f4_mac(c1, *a1++, w);
		c2 = peft_f4_mac(c2, *a2++, w);
		c3 = peft_f4_mac(c3, *a3++, w);
	}
	peft_f4_store(acc, c0), peft_f4_store(acc + 4, c1);
	peft_f4_store(acc + 8, c2), peft_f4_store(acc + 12, c3);
}

/* pc, 4 x 4, raw int8 b (the scales already folded into a). */
static inline void peft_blk_pc4x4_s8u(int32_t n, const float *a, int32_t a_lane, const int8_t *b,
				      int32_t b_step, float *acc)
{
	peft_f4 c0 = peft_f4_load(acc), c1 = peft_f4_load(acc + 4);
	peft_f4 c2 = peft_f4_load(acc + 8), c3 = peft_f4_load(acc + 12);
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const peft_f4 w = peft_f4_s8_raw(b);

		b += b_step;
		c0 = peft_f4_mac(c0, *a0++, w);
		c1 = peft_f4_mac(c1, *a1++, w);
		c2 = peft_f4_mac(c2, *a2++, w);
		c3 = peft_f4_mac(c3, *a3++, w);
	}
	peft_f4_store(acc, c0), peft_f4_store(acc + 4, c1);
	peft_f4_store(acc + 8, c2), peft_f4_store(acc + 12, c3);
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
	peft_f4 c0 = peft_f4_load(acc), c1 = peft_f4_load(acc + 4);
	peft_f4 c2 = peft_f4_load(acc + 8), c3 = peft_f4_load(acc + 12);

	for (int32_t k = 0; k < n; k++) {
		const peft_f4 w = peft_f4_load(b);

		c0 = peft_f4_mac(c0, a[0], w);
		c1 = peft_f4_mac(c1, a[1], w);
		c2 = peft_f4_mac(c2, a[2], w);
		c3 = peft_f4_mac(c3, a[3], w);
		a += a_step;
		b += b_step;
	}
	peft_f4_store(acc, c0), peft_f4_store(acc + 4, c1);
	peft_f4_store(acc + 8, c2), peft_f4_store(acc + 12, c3);
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

/* int8 weights are converted into a float tile once per block of 4 weight
 * lanes and PEFT_TILE_K values (1 KiB of stack), packed [k][4] so that one
 * pointer serves a block's four lanes; a tile pays off once two or more
 * blocks of 4 rows read it (PEFT_TILE_MIN_ROWS). */
#define PEFT_TILE_K        64
#define PEFT_TILE_MIN_ROWS 8

static inline int32_t peft_tile_len(int32_t n, int32_t k0)
{
	return n - k0 < PEFT_TILE_K ? n - k0 : PEFT_TILE_K;
}

/* tile[k * 4 + q] = q8[q * lane + k] for k < n (four int8 rows read forward). */
static inline void peft_tile_rows_s8(int32_t n, const int8_t *q8, int32_t lane, float *tile)
{
	const int8_t *q0 = q8, *q1 = q8 + lane, *q2 = q8 + 2 * lane, *q3 = q8 + 3 * lane;

	for (int32_t k = 0; k < n; k++) {
		tile[0] = (float)*q0++;
		tile[1] = (float)*q1++;
		tile[2] = (float)*q2++;
		tile[3] = (float)*q3++;
		tile += 4;
	}
}

/* tile[k * 4 + q] = f[q * lane + k] for k < n (four float rows read forward). */
static inline void peft_tile_rows_f32(int32_t n, const float *f, int32_t lane, float *tile)
{
	const float *f0 = f, *f1 = f + lane, *f2 = f + 2 * lane, *f3 = f + 3 * lane;

	for (int32_t k = 0; k < n; k++) {
		tile[0] = *f0++;
		tile[1] = *f1++;
		tile[2] = *f2++;
		tile[3] = *f3++;
		tile += 4;
	}
}

/* tile[k * 4 + q] = q8[k * step + q] * s[k * s_step] for k < n (four
 * contiguous int8 values per k, each times its row's scale). */
static inline void peft_tile_cols_s8(int32_t n, const int8_t *q8, int32_t step, const float *s,
				     int32_t s_step, float *tile)
{
	for (int32_t k = 0; k < n; k++) {
		const float sk = *s;

		tile[0] = (float)q8[0] * sk;
		tile[1] = (float)q8[1] * sk;
		tile[2] = (float)q8[2] * sk;
		tile[3] = (float)q8[3] * sk;
		q8 += step;
		s += s_step;
		tile += 4;
	}
}

/* pc, 4 x 4 over a packed tile: four a rows, the tile's four lanes from one
 * pointer (one k per iteration: unrolled by two, GCC's schedule spills). */
static inline void peft_blk_pt4x4_f32(int32_t n, const float *a, int32_t a_lane, const float *tile,
				      float *acc)
{
	peft_blk_pc4x4_f32(n, a, a_lane, tile, 4, acc);
}

/* peft_blk_pt4x4_f32 on a block whose 16 lanes are all new, with the sums
 * kept in registers from start to store: they start at 0 (or at y's partial
 * sums when from_y) and end as y[r * ys + q] = sum * sc[q] + sh[q], or
 * y += sum when add (sc NULL), or the raw sum (sc NULL). */
static inline void peft_blk_pt4x4_f32_y(int32_t n, const float *a, int32_t a_lane,
					const float *tile, float *y, int32_t ys, bool from_y,
					const float *sc, const float *sh, bool add)
{
	float *y0 = y, *y1 = y + ys, *y2 = y + 2 * ys, *y3 = y + 3 * ys;
	peft_f4 c0 = peft_f4_zero(), c1 = c0, c2 = c0, c3 = c0;

	if (from_y) {
		c0 = peft_f4_load(y0), c1 = peft_f4_load(y1);
		c2 = peft_f4_load(y2), c3 = peft_f4_load(y3);
	}
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;
	const float *b = tile;

	for (int32_t k = 0; k < n; k++) {
		const peft_f4 w = peft_f4_load(b);

		b += 4;
		c0 = peft_f4_mac(c0, *a0++, w);
		c1 = peft_f4_mac(c1, *a1++, w);
		c2 = peft_f4_mac(c2, *a2++, w);
		c3 = peft_f4_mac(c3, *a3++, w);
	}
	if (sc != NULL) {
		const peft_f4 s = peft_f4_load(sc), h = peft_f4_load(sh);

		c0 = peft_f4_scale_shift(c0, s, h), c1 = peft_f4_scale_shift(c1, s, h);
		c2 = peft_f4_scale_shift(c2, s, h), c3 = peft_f4_scale_shift(c3, s, h);
	} else if (add) {
		c0 = peft_f4_add(peft_f4_load(y0), c0), c1 = peft_f4_add(peft_f4_load(y1), c1);
		c2 = peft_f4_add(peft_f4_load(y2), c2), c3 = peft_f4_add(peft_f4_load(y3), c3);
	}
	peft_f4_store(y0, c0), peft_f4_store(y1, c1);
	peft_f4_store(y2, c2), peft_f4_store(y3, c3);
}

/* pc, 1 x 4 over a packed tile (a row left over after the 4-row blocks). */
static inline void peft_blk_pt1x4_f32(int32_t n, const float *a, const float *tile, float *acc)
{
	peft_blk_pc1x4_f32(n, a, tile, 4, acc);
}

/* Lanes r >= r_new, q >= q_new of a 4 x 4 block (those an overlapping block
 * has not stored yet): y[r * ys + q] = acc[r * 4 + q] * sc[q] + sh[q], or the
 * raw sum when sc is NULL (a partial sum between tiles). */
static inline void peft_blk_out4x4(const float *acc, float *y, int32_t ys, int32_t r_new,
				   int32_t q_new, const float *sc, const float *sh)
{
	if (r_new == 0 && q_new == 0 && sc != NULL) {
		const float s0 = sc[0], s1 = sc[1], s2 = sc[2], s3 = sc[3];
		const float h0 = sh[0], h1 = sh[1], h2 = sh[2], h3 = sh[3];

		for (int32_t r = 0; r < 4; r++) {
			y[0] = acc[0] * s0 + h0;
			y[1] = acc[1] * s1 + h1;
			y[2] = acc[2] * s2 + h2;
			y[3] = acc[3] * s3 + h3;
			acc += 4;
			y += ys;
		}
		return;
	}
	if (r_new == 0 && q_new == 0) {
		for (int32_t r = 0; r < 4; r++) {
			y[0] = acc[0], y[1] = acc[1], y[2] = acc[2], y[3] = acc[3];
			acc += 4;
			y += ys;
		}
		return;
	}
	for (int32_t r = r_new; r < 4; r++) {
		for (int32_t q = q_new; q < 4; q++) {
			const float v = acc[r * 4 + q];

			y[r * ys + q] = sc != NULL ? v * sc[q] + sh[q] : v;
		}
	}
}

/* acc[r * 4 + q] = y[r * ys + q]: a partial sum back from the output. */
static inline void peft_blk_in4x4(float *acc, const float *y, int32_t ys)
{
	for (int32_t r = 0; r < 4; r++) {
		acc[0] = y[0], acc[1] = y[1], acc[2] = y[2], acc[3] = y[3];
		acc += 4;
		y += ys;
	}
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

/* Lanes r >= r_new, q >= q_new of a 4 x 4 input-gradient block: a partial sum
 * (between tiles) is stored; a finished one goes through peft_blk_put (stored,
 * or added when the caller accumulates). */
static inline void peft_blk_grad4x4(const float *acc, float *y, int32_t ys, int32_t r_new,
				    int32_t q_new, bool finished, bool add)
{
	for (int32_t r = r_new; r < 4; r++) {
		for (int32_t q = q_new; q < 4; q++) {
			if (finished) {
				peft_blk_put(y + r * ys + q, acc[r * 4 + q], add);
			} else {
				y[r * ys + q] = acc[r * 4 + q];
			}
		}
	}
}

/* sums[c] += sum over r of x[r * cols + c], rows in order (peft_add_column_sums'
 * additions): four columns at a time, their sums in registers, so that a row
 * costs a load and an add per element. */
static inline void peft_blk_column_sums(int32_t rows, int32_t cols, const float *x, float *sums)
{
	int32_t c = 0;

	for (; c + 4 <= cols; c += 4) {
		float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
		const float *p = x + c;

		for (int32_t r = 0; r < rows; r++) {
			s0 += p[0];
			s1 += p[1];
			s2 += p[2];
			s3 += p[3];
			p += cols;
		}
		sums[c] += s0;
		sums[c + 1] += s1;
		sums[c + 2] += s2;
		sums[c + 3] += s3;
	}
	for (; c < cols; c++) {
		float acc = 0.0f;

		for (int32_t r = 0; r < rows; r++) {
			acc += x[r * cols + c];
		}
		sums[c] += acc;
	}
}

#endif /* PEFT_KERNEL_BLOCKS_H */
