/* Inner loops shared by the convolution and fully connected kernels (private
 * to lib/peft/kernels). Every loop runs over contiguous memory; `restrict`
 * tells the compiler that the written array overlaps no read one, so that it
 * may keep values in registers (and vectorize, on hosts that can). Sums run
 * in index order, in float32, as the header's reference semantics say. */
#ifndef PEFT_KERNEL_LOOPS_H
#define PEFT_KERNEL_LOOPS_H

#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_kernels.h"

/* Frozen int8 weights or float weights, as one argument of a shared kernel
 * body: exactly one of q / f is set. `scale_step` is 0 for a per-tensor scale
 * and 1 for per-channel scales, so that channel c's scale is
 * scales[c * scale_step] without a branch. */
typedef struct {
	const int8_t *q;
	const float *f;
	const float *scales;
	int32_t scale_step;
} peft_wsrc;

static inline peft_wsrc peft_wsrc_s8(const peft_weights_s8 *w)
{
	return (peft_wsrc){w->data, NULL, w->scales, w->scale_count == 1 ? 0 : 1};
}

static inline peft_wsrc peft_wsrc_f32(const float *w)
{
	return (peft_wsrc){NULL, w, NULL, 0};
}

/* Scale of output channel c (1 for float weights). */
static inline float peft_wsrc_scale(const peft_wsrc *w, int32_t c)
{
	return w->q != NULL ? w->scales[c * w->scale_step] : 1.0f;
}

/* acc + sum of a[i] * x[i], added in index order */
static inline float peft_dot_f32(int32_t n, const float *a, const float *x, float acc)
{
	for (int32_t i = 0; i < n; i++) {
		acc += a[i] * x[i];
	}
	return acc;
}

/* acc + sum of q[i] * x[i], unscaled, added in index order */
static inline float peft_dot_s8(int32_t n, const int8_t *q, const float *x, float acc)
{
	for (int32_t i = 0; i < n; i++) {
		acc += (float)q[i] * x[i];
	}
	return acc;
}

/* acc + raw dot product of weights w (element offset `at`) with x. */
static inline float peft_wsrc_dot(const peft_wsrc *w, int32_t at, int32_t n, const float *x,
				  float acc)
{
	return w->q != NULL ? peft_dot_s8(n, w->q + at, x, acc)
			    : peft_dot_f32(n, w->f + at, x, acc);
}

/* y[i] += g * a[i] */
static inline void peft_axpy_f32(int32_t n, float g, const float *restrict a, float *restrict y)
{
	for (int32_t i = 0; i < n; i++) {
		y[i] += g * a[i];
	}
}

/* y[i] += g * q[i] */
static inline void peft_axpy_s8(int32_t n, float g, const int8_t *restrict q, float *restrict y)
{
	for (int32_t i = 0; i < n; i++) {
		y[i] += g * (float)q[i];
	}
}

/* y[i] += g * w[at + i], g already scaled. */
static inline void peft_wsrc_axpy(const peft_wsrc *w, int32_t at, int32_t n, float g,
				  float *restrict y)
{
	if (w->q != NULL) {
		peft_axpy_s8(n, g, w->q + at, y);
	} else {
		peft_axpy_f32(n, g, w->f + at, y);
	}
}

/* y[i] += a[i] * x[i] (depthwise: one weight per channel) */
static inline void peft_vmac_f32(int32_t n, const float *restrict a, const float *restrict x,
				 float *restrict y)
{
	for (int32_t i = 0; i < n; i++) {
		y[i] += a[i] * x[i];
	}
}

/* y[i] += q[i] * x[i], unscaled */
static inline void peft_vmac_s8(int32_t n, const int8_t *restrict q, const float *restrict x,
				float *restrict y)
{
	for (int32_t i = 0; i < n; i++) {
		y[i] += (float)q[i] * x[i];
	}
}

static inline void peft_zero_f32(int32_t n, float *y)
{
	for (int32_t i = 0; i < n; i++) {
		y[i] = 0.0f;
	}
}

/* The taps [*lo, *hi) of a window starting at input position `origin`
 * (out * stride - pad) that fall inside an input of `in_n` positions; empty
 * (lo >= hi) when the whole window is padding. */
static inline void peft_tap_range(int32_t origin, int32_t kernel, int32_t in_n, int32_t *lo,
				  int32_t *hi)
{
	*lo = origin < 0 ? -origin : 0;
	*hi = in_n - origin < kernel ? in_n - origin : kernel;
}

/* The taps of one axis that read input position `pos` (padded: pos + pad)
 * in some output of an `out_n`-long output: ky = pos - o * stride for the
 * outputs o in range, so they run from *lo to below *hi in steps of the
 * stride (empty when lo >= hi). The input gradients gather over them, in
 * ascending tap order. */
static inline void peft_covering_taps(int32_t pos, int32_t stride, int32_t kernel, int32_t out_n,
				      int32_t *lo, int32_t *hi)
{
	const int32_t last_out = pos - (out_n - 1) * stride; /* tap of the last output */

	*lo = last_out > pos % stride ? last_out : pos % stride;
	*hi = kernel < pos + 1 ? kernel : pos + 1;
}

/* Channels whose sums a backward kernel keeps on the stack at once (64
 * bytes). Each element's sum is finished there before it is stored or added
 * to the caller's buffer, so that `accumulate` and the add-into of the weight
 * gradients give exactly buffer + the value a fresh call writes. */
#define PEFT_KERNEL_BLOCK 16

static inline int32_t peft_block_len(int32_t n, int32_t start)
{
	return n - start < PEFT_KERNEL_BLOCK ? n - start : PEFT_KERNEL_BLOCK;
}

/* y[i] = acc[i], or y[i] += acc[i] when add is set. */
static inline void peft_store_block(int32_t n, const float *restrict acc, float *restrict y,
				    bool add)
{
	for (int32_t i = 0; i < n; i++) {
		y[i] = add ? y[i] + acc[i] : acc[i];
	}
}

/* The outputs [*lo, *hi) whose window reads an in-bounds input through tap k:
 * 0 <= o * stride - pad + k < in_n. */
static inline void peft_out_range(int32_t k, int32_t stride, int32_t pad, int32_t in_n,
				  int32_t out_n, int32_t *lo, int32_t *hi)
{
	const int32_t first = pad - k;
	const int32_t last = in_n - 1 + pad - k;

	*lo = first <= 0 ? 0 : (first + stride - 1) / stride;
	*hi = last < 0 ? 0 : last / stride + 1;
	if (*hi > out_n) {
		*hi = out_n;
	}
}

/* A 1x1 convolution with stride 1 and no padding is a fully connected layer
 * over the h * w pixels (the FC kernels' tighter loops run it). */
static inline bool peft_conv_is_pointwise(const peft_conv_params *p)
{
	return p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
	       p->pad_top == 0 && p->pad_left == 0 && p->in.h == p->out.h && p->in.w == p->out.w;
}

static inline peft_fc_params peft_conv_pointwise_fc(const peft_conv_params *p)
{
	return (peft_fc_params){p->out.h * p->out.w, p->in.c, p->out.c};
}

/* sums[c] += sum over r of x[r * cols + c], rows in order: the bias gradient of
 * every kernel that adds its bias per output channel (conv, depthwise, fc). */
static inline void peft_add_column_sums(int32_t rows, int32_t cols, const float *x, float *sums)
{
	for (int32_t c = 0; c < cols; c++) {
		float acc = 0.0f;

		for (int32_t r = 0; r < rows; r++) {
			acc += x[r * cols + c];
		}
		sums[c] += acc;
	}
}

/* The int8 path's row quantization (peft_fc_bwd_input_s8s8): q[o] =
 * round(g[o] * scale(o) / s) with s = max|g * scale| / 127, halves away from
 * zero, q[n] = 0 when n is odd (a pair for SMLAD). Returns s (0 for a zero row,
 * whose q is all 0). */
static inline float peft_quantize_grad_row(int32_t n, const float *g, const peft_wsrc *w,
					   int16_t *q)
{
	float m = 0.0f;

	for (int32_t o = 0; o < n; o++) {
		const float h = g[o] * peft_wsrc_scale(w, o);
		const float a = h < 0.0f ? -h : h;

		m = a > m ? a : m;
	}
	const float inv = m > 0.0f ? 127.0f / m : 0.0f;

	for (int32_t o = 0; o < n; o++) {
		const float v = g[o] * peft_wsrc_scale(w, o) * inv;
		const int32_t r = (int32_t)(v + (v < 0.0f ? -0.5f : 0.5f));

		q[o] = (int16_t)(r > 127 ? 127 : (r < -127 ? -127 : r));
	}
	if (n % 2 != 0) {
		q[n] = 0;
	}
	return m / 127.0f;
}

#endif /* PEFT_KERNEL_LOOPS_H */
