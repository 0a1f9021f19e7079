/* Blocks of 4 rows x 8 lanes for hosts whose float vectors hold 8 lanes
 * (x86 AVX: PEFT_F8_VECTOR; private to lib/peft/kernels_optimized). Where the
 * 4 x 4 blocks of peft_kernel_blocks.h (the M4's 16 accumulators) fill only half
 * of such a vector, these keep 4 rows x 8 sums in four vectors: one vector load
 * of a packed tile and four broadcasts feed 32 multiply-adds. Sums run over k in
 * order, lane by lane with the same IEEE operations, so every sum is the one
 * the 4 x 4 blocks and the reference compute. Elsewhere PEFT_F8_VECTOR is 0 and
 * a kernel's 8-lane path is dead code (the vector type still compiles). */
#ifndef PEFT_KERNEL_BLOCKS8_H
#define PEFT_KERNEL_BLOCKS8_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX__) && !defined(PEFT_SCALAR_LANES)
#define PEFT_F8_VECTOR 1
#else
#define PEFT_F8_VECTOR 0
#endif

typedef float peft_f8 __attribute__((vector_size(32)));

static inline peft_f8 peft_f8_load(const float *p)
{
	peft_f8 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void peft_f8_store(float *p, peft_f8 v)
{
	memcpy(p, &v, sizeof(v));
}

/* Blocks of 8 over n >= 8 elements: the last starts at n - 8, overlapping the
 * one before it. */
static inline int32_t peft_blk8_start(int32_t i, int32_t n)
{
	return i + 8 <= n ? i : n - 8;
}

/* tile[k * 8 + q] = q8[q * lane + k] (raw int8) for k < n: eight rows read
 * forward. */
static inline void peft_tile8_rows_s8(int32_t n, const int8_t *q8, int32_t lane, float *tile)
{
	for (int32_t q = 0; q < 8; q++) {
		const int8_t *row = q8 + q * lane;

		for (int32_t k = 0; k < n; k++) {
			tile[k * 8 + q] = (float)row[k];
		}
	}
}

static inline void peft_tile8_rows_f32(int32_t n, const float *f, int32_t lane, float *tile)
{
	for (int32_t q = 0; q < 8; q++) {
		const float *row = f + q * lane;

		for (int32_t k = 0; k < n; k++) {
			tile[k * 8 + q] = row[k];
		}
	}
}

/* tile[k * 8 + q] = q8[k * step + q] * s[k * s_step] for k < n (eight
 * contiguous int8 values per k, each times its row's scale: peft_tile_cols_s8's
 * values). */
static inline void peft_tile8_cols_s8(int32_t n, const int8_t *q8, int32_t step, const float *s,
				      int32_t s_step, float *tile)
{
	for (int32_t k = 0; k < n; k++) {
		const float sk = s[k * s_step];

		for (int32_t q = 0; q < 8; q++) {
			tile[k * 8 + q] = (float)q8[k * step + q] * sk;
		}
	}
}

/* tile[k * 8 + q] = f[k * step + q] for k < n (eight contiguous floats per k). */
static inline void peft_tile8_cols_f32(int32_t n, const float *f, int32_t step, float *tile)
{
	for (int32_t k = 0; k < n; k++) {
		for (int32_t q = 0; q < 8; q++) {
			tile[k * 8 + q] = f[k * step + q];
		}
	}
}

/* y[p * ys + q] += sum over k < n of a[k * a_step + p] * b[k * b_step + q] for
 * rows p >= p_new and lanes q >= q_new of a 4 x 8 block (the weight gradient: a
 * the output gradients, b the inputs, both read across rows); each sum is
 * finished before it is added. */
static inline void peft_blk_cc4x8_add(int32_t n, const float *a, int32_t a_step, const float *b,
				      int32_t b_step, float *y, int32_t ys, int32_t p_new,
				      int32_t q_new)
{
	const peft_f8 zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
	peft_f8 c[4] = {zero, zero, zero, zero};

	for (int32_t k = 0; k < n; k++) {
		const peft_f8 w = peft_f8_load(b + k * b_step);
		const float *ak = a + k * a_step;

		c[0] = c[0] + ak[0] * w;
		c[1] = c[1] + ak[1] * w;
		c[2] = c[2] + ak[2] * w;
		c[3] = c[3] + ak[3] * w;
	}
	for (int32_t p = p_new; p < 4; p++) {
		float *yp = y + p * ys;
		const peft_f8 v = peft_f8_load(yp) + c[p];

		if (q_new == 0) {
			peft_f8_store(yp, v);
			continue;
		}
		for (int32_t q = q_new; q < 8; q++) {
			yp[q] = v[q];
		}
	}
}

/* Rows r_new..3, lanes q_new..7 of a 4 x 8 block over a packed [k][8] tile:
 * the sums start at 0 (or at y's partial sums when from_y) and end as
 * y[r * ys + q] = sum * sc[q] + sh[q] (sc not NULL: the last tile), y + sum
 * (add: an input gradient that accumulates), or the raw sum. Rows and lanes
 * below r_new and q_new (stored by the block before, which overlaps this one)
 * are read but not stored. */
static inline void peft_blk_pt4x8_f32_store(int32_t n, const float *a, int32_t a_lane,
					    const float *tile, float *y, int32_t ys, bool from_y,
					    const float *sc, const float *sh, bool add,
					    int32_t r_new, int32_t q_new)
{
	const peft_f8 zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
	peft_f8 c0 = zero, c1 = zero, c2 = zero, c3 = zero;

	if (from_y) {
		c0 = peft_f8_load(y), c1 = peft_f8_load(y + ys);
		c2 = peft_f8_load(y + 2 * ys), c3 = peft_f8_load(y + 3 * ys);
	}
	const float *a0 = a, *a1 = a + a_lane, *a2 = a + 2 * a_lane, *a3 = a + 3 * a_lane;

	for (int32_t k = 0; k < n; k++) {
		const peft_f8 w = peft_f8_load(tile + 8 * k);

		c0 = c0 + a0[k] * w;
		c1 = c1 + a1[k] * w;
		c2 = c2 + a2[k] * w;
		c3 = c3 + a3[k] * w;
	}
	if (sc != NULL) {
		const peft_f8 s = peft_f8_load(sc), h = peft_f8_load(sh);

		c0 = c0 * s + h, c1 = c1 * s + h, c2 = c2 * s + h, c3 = c3 * s + h;
	}
	const peft_f8 rows[4] = {c0, c1, c2, c3};

	for (int32_t r = r_new; r < 4; r++) {
		float *yr = y + r * ys;
		peft_f8 v = rows[r];

		if (add) {
			v = peft_f8_load(yr) + v;
		}
		if (q_new == 0) {
			peft_f8_store(yr, v);
			continue;
		}
		for (int32_t q = q_new; q < 8; q++) {
			yr[q] = v[q];
		}
	}
}

/* One row of 8 sums over a packed [k][8] tile (calls of fewer than 4 rows), as
 * peft_blk_pt4x8_f32_y computes each of its rows. */
static inline void peft_blk_pt1x8_f32_y(int32_t n, const float *a, const float *tile, float *y,
					bool from_y, const float *sc, const float *sh)
{
	peft_f8 c = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};

	if (from_y) {
		c = peft_f8_load(y);
	}
	for (int32_t k = 0; k < n; k++) {
		c = c + a[k] * peft_f8_load(tile + 8 * k);
	}
	if (sc != NULL) {
		c = c * peft_f8_load(sc) + peft_f8_load(sh);
	}
	peft_f8_store(y, c);
}

/* Rows r_new..3 of a 4 x 8 forward block (all lanes: an output block that
 * overlaps recomputes its shared lanes to the same values). */
static inline void peft_blk_pt4x8_f32_y(int32_t n, const float *a, int32_t a_lane,
					const float *tile, float *y, int32_t ys, bool from_y,
					const float *sc, const float *sh, int32_t r_new)
{
	peft_blk_pt4x8_f32_store(n, a, a_lane, tile, y, ys, from_y, sc, sh, false, r_new, 0);
}

#endif /* PEFT_KERNEL_BLOCKS8_H */
