/* The 3 x 3 loops of the optimized depthwise kernels (private to this folder).
 * One channel at a time, a band of the NHWC tensor it reads is copied into a
 * zero-padded plane on the stack (PEFT_DW_PLANE floats), so that every
 * window lies inside the plane: the loops below never test a border, and the
 * channel's 9 taps stay in registers while a row of pixels streams past. A padding tap adds w * 0,
 * which leaves every sum as the reference's in-bounds sum. */
#ifndef PEFT_DEPTHWISE_PLANE_H
#define PEFT_DEPTHWISE_PLANE_H

#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_kernels.h"

/* 1 KiB of stack. Planes up to PEFT_DW_PITCH floats wide are laid out with
 * that fixed row pitch, so that a window's three rows are immediate offsets
 * from one pointer (wider ones use their own width as the pitch). */
#define PEFT_DW_PLANE 256
#define PEFT_DW_PITCH 20
#define PEFT_DW_ROWS  (PEFT_DW_PLANE / 3)
/* Floats past the last row that a sliding window may load (and ignore). */
#define PEFT_DW_SLACK 4
#define PEFT_DW_BUF   (PEFT_DW_PLANE + PEFT_DW_SLACK)

/* A zero-padded plane of one channel: rows of `pitch` floats of which the
 * first pw are used. Columns outside the tensor are zeroed once (peft_dw_plane
 * _init) and never written; `dirty` marks the rows that hold data, so that a
 * row outside the tensor is cleared only when an earlier band wrote it. */
typedef struct {
	float *buf;
	int32_t pitch;
	int32_t pw;
	uint8_t dirty[PEFT_DW_ROWS];
} peft_dw_plane;

static inline int32_t peft_dw_pitch(int32_t pw)
{
	return pw <= PEFT_DW_PITCH ? PEFT_DW_PITCH : pw;
}

/* buf: PEFT_DW_BUF floats, of which the first `rows` rows (and the slack
 * after them) are used. */
static inline void peft_dw_plane_init(peft_dw_plane *pl, float *buf, int32_t pw, int32_t rows)
{
	pl->buf = buf;
	pl->pw = pw;
	pl->pitch = peft_dw_pitch(pw);
	for (int32_t i = 0; i < rows * pl->pitch + PEFT_DW_SLACK; i++) {
		buf[i] = 0.0f;
	}
	for (int32_t r = 0; r < PEFT_DW_ROWS; r++) {
		pl->dirty[r] = 0;
	}
}

/* plane row r, columns x < pw = t[row0 + r][col0 + x][c] (0 outside t), r < rows. */
static inline void peft_dw_fill(peft_dw_plane *pl, const float *t, const peft_dims *d, int32_t c,
				int32_t row0, int32_t rows, int32_t col0)
{
	const int32_t x_lo = col0 < 0 ? -col0 : 0;
	int32_t x_hi = d->w - col0;

	x_hi = x_hi > pl->pw ? pl->pw : (x_hi < x_lo ? x_lo : x_hi);
	const int32_t n = x_hi - x_lo;
	const int32_t cs = d->c;

	for (int32_t r = 0; r < rows; r++) {
		const int32_t sy = row0 + r;
		float *row = pl->buf + r * pl->pitch + x_lo;

		if (sy < 0 || sy >= d->h) {
			if (pl->dirty[r]) {
				for (int32_t x = 0; x < n; x++) {
					row[x] = 0.0f;
				}
				pl->dirty[r] = 0;
			}
			continue;
		}
		const float *src = t + ((sy * d->w + col0 + x_lo) * cs + c);
		int32_t x = 0;

		for (; x + 2 <= n; x += 2) {
			const float v0 = src[0], v1 = src[cs];

			row[x] = v0;
			row[x + 1] = v1;
			src += 2 * cs;
		}
		if (x < n) {
			row[x] = *src;
		}
		pl->dirty[r] = 1;
	}
}

/* The sum of one stride-1 pixel from the window's columns A, B, C (rows 0..2
 * each). Forward: taps in row-major order over the window, as the reference
 * adds them. Input gradient (a gather): the window is the grad_out rows and
 * columns that read the pixel, kernel tap t at window position 8 - t, added in
 * tap order as the reference's gather does (peft_dw_gather_input): the same
 * float additions in the same order, padding terms adding w * 0. */
#define PEFT_DW_SUM_FORWARD(A, B, C)                                                               \
	(y = A##0 * k0, y += B##0 * k1, y += C##0 * k2, y += A##1 * k3, y += B##1 * k4,            \
	 y += C##1 * k5, y += A##2 * k6, y += B##2 * k7, y += C##2 * k8)
#define PEFT_DW_SUM_GATHER(A, B, C)                                                                \
	(y = C##2 * k0, y += B##2 * k1, y += A##2 * k2, y += C##1 * k3, y += B##1 * k4,            \
	 y += A##1 * k5, y += C##0 * k6, y += B##0 * k7, y += A##0 * k8)

/* One stride-1 pixel: its sum, scaled, shifted and stored; then column A
 * takes the next column of the row. */
#define PEFT_DW_PIXEL(SUM, A, B, C)                                                                \
	do {                                                                                       \
		float y;                                                                           \
		SUM(A, B, C);                                                                      \
		y = y * scale + shift;                                                             \
		*o = add ? *o + y : y;                                                             \
		o += os;                                                                           \
		A##0 = r[3], A##1 = r[pw + 3], A##2 = r[2 * pw + 3];                               \
		r++;                                                                               \
	} while (0)

/* Rows j < m (plane rows p_row apart, output rows o_row apart) of n stride-1
 * pixels: the window slides one column per pixel, so each pixel loads only
 * its new column (three pixels per iteration, the columns' registers taking
 * turns); the taps stay in registers for all m rows. A row's last pixel
 * loads one column past its window (inside the plane's slack). The body of
 * a function whose parameters are those of peft_dw3x3_slide, SUM one of the
 * PEFT_DW_SUM_* orders. */
#define PEFT_DW_SLIDE(SUM)                                                                         \
	do {                                                                                       \
		const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5];      \
		const float k6 = k[6], k7 = k[7], k8 = k[8];                                       \
                                                                                                   \
		for (int32_t j = 0; j < m; j++) {                                                  \
			const float *r = p + j * p_row;                                            \
			float *o = out + j * o_row;                                                \
			float a0 = r[0], a1 = r[pw], a2 = r[2 * pw];                               \
			float b0 = r[1], b1 = r[pw + 1], b2 = r[2 * pw + 1];                       \
			float c0 = r[2], c1 = r[pw + 2], c2 = r[2 * pw + 2];                       \
			int32_t i = 0;                                                             \
                                                                                                   \
			for (; i + 3 <= n; i += 3) {                                               \
				PEFT_DW_PIXEL(SUM, a, b, c);                                       \
				PEFT_DW_PIXEL(SUM, b, c, a);                                       \
				PEFT_DW_PIXEL(SUM, c, a, b);                                       \
			}                                                                          \
			if (i < n) {                                                               \
				PEFT_DW_PIXEL(SUM, a, b, c);                                       \
				i++;                                                               \
			}                                                                          \
			if (i < n) {                                                               \
				PEFT_DW_PIXEL(SUM, b, c, a);                                       \
			}                                                                          \
		}                                                                                  \
	} while (0)

/* Forward: out[j * o_row + i * os] = (add ? that : 0) + y * scale + shift,
 * y the window at plane p + j * p_row + i times the taps k (row-major). */
static inline void peft_dw3x3_slide(int32_t m, int32_t n, const float *p, int32_t p_row, int32_t pw,
				    const float *k, float scale, float shift, bool add, float *out,
				    int32_t o_row, int32_t os)
{
	PEFT_DW_SLIDE(PEFT_DW_SUM_FORWARD);
}

/* Input gradient at stride 1: the same, the window times the kernel flipped,
 * summed in the reference's tap order (PEFT_DW_SUM_GATHER); k unflipped. */
static inline void peft_dw3x3_slide_gather(int32_t m, int32_t n, const float *p, int32_t p_row,
					   int32_t pw, const float *k, float scale, float shift,
					   bool add, float *out, int32_t o_row, int32_t os)
{
	PEFT_DW_SLIDE(PEFT_DW_SUM_GATHER);
}

/* For rows j < m and pixels i < n: y = sum over taps t (row-major) of
 * k[t] * p[j * p_row + (t / 3) * pw + t % 3 + i * step], then
 * out[j * o_row + i * os] = (add ? that : 0) + y * scale + shift. The taps
 * stay in registers for the whole band. */
static inline void peft_dw3x3_rows(int32_t m, int32_t n, const float *p, int32_t p_row, int32_t pw,
				   int32_t step, const float *k, float scale, float shift, bool add,
				   float *out, int32_t o_row, int32_t os)
{
	const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5];
	const float k6 = k[6], k7 = k[7], k8 = k[8];

	if (step == 1) {
		peft_dw3x3_slide(m, n, p, p_row, pw, k, scale, shift, add, out, o_row, os);
		return;
	}
	for (int32_t j = 0; j < m; j++) {
		const float *r0 = p + j * p_row;
		float *o = out + j * o_row;

		for (int32_t i = 0; i < n; i++) {
			float y = r0[0] * k0;

			y += r0[1] * k1;
			y += r0[2] * k2;
			y += r0[pw] * k3;
			y += r0[pw + 1] * k4;
			y += r0[pw + 2] * k5;
			y += r0[2 * pw] * k6;
			y += r0[2 * pw + 1] * k7;
			y += r0[2 * pw + 2] * k8;
			y = y * scale + shift;
			*o = add ? *o + y : y;
			r0 += step;
			o += os;
		}
	}
}

/* Output rows per band of a 3-row window moving `stride` rows per output row
 * over planes pw floats wide (0 when not even one window fits). */
static inline int32_t peft_dw_band(int32_t pw, int32_t stride)
{
	const int32_t rows = PEFT_DW_PLANE / peft_dw_pitch(pw);

	return rows < 3 ? 0 : (rows - 3) / stride + 1;
}

/* Whether a channel's plane pays for its copy: with fewer than `min_pixels`
 * pixels per channel (the 2 x 2 and 1 x 1 layers at the end of a network), the
 * reference's loops over contiguous channels cost less (kernel_bench, step). */
#define PEFT_DW_MIN_PIXELS 16

#endif /* PEFT_DEPTHWISE_PLANE_H */
