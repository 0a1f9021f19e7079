/* Argument checks shared by the kernels (private to lib/peft/kernels).
 * Static inline so that each kernel file stays self-contained and no extra
 * symbol is exported. */
#ifndef PEFT_KERNEL_CHECK_H
#define PEFT_KERNEL_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peft/peft_kernels.h"

/* The product of positive factors fits in int32 (weight tensor sizes). */
static inline bool peft_size_ok(int32_t a, int32_t b, int32_t c, int32_t d)
{
	const int32_t factors[4] = {a, b, c, d};
	int64_t n = 1;

	for (int i = 0; i < 4; i++) {
		if (factors[i] <= 0) {
			return false;
		}
		n *= factors[i];
		if (n > INT32_MAX) {
			return false;
		}
	}
	return true;
}

/* Positive dims whose product stays in int32, so that index arithmetic in
 * int32 never overflows. */
static inline bool peft_dims_ok(const peft_dims *d)
{
	if (d == NULL || d->h <= 0 || d->w <= 0 || d->c <= 0) {
		return false;
	}
	return peft_size_ok(d->h, d->w, d->c, 1);
}

static inline int32_t peft_dims_count(const peft_dims *d)
{
	return d->h * d->w * d->c;
}

/* One spatial axis of the header's rule: pad_before >= 0 and
 * out == (in + pad_before + pad_after - kernel) / stride + 1 for some
 * 0 <= pad_after < kernel + stride. The quotient grows by at most one per
 * step of pad_after, so the reachable outs are one interval. Every position
 * computed later (out * stride + kernel) then stays in int32. */
static inline bool peft_axis_ok(int32_t in, int32_t out, int32_t kernel, int32_t stride,
				int32_t pad_before)
{
	if (in <= 0 || out <= 0 || kernel <= 0 || stride <= 0 || pad_before < 0 ||
	    (int64_t)in + pad_before + 2 * (int64_t)kernel + 2 * (int64_t)stride > INT32_MAX) {
		return false;
	}
	int64_t lo_pad = (int64_t)kernel - in - pad_before;
	int64_t hi_pad = (int64_t)kernel + stride - 1;

	if (lo_pad < 0) {
		lo_pad = 0;
	}
	if (lo_pad > hi_pad) {
		return false;
	}
	int64_t out_min = ((int64_t)in + pad_before + lo_pad - kernel) / stride + 1;
	int64_t out_max = ((int64_t)in + pad_before + hi_pad - kernel) / stride + 1;

	return out >= out_min && out <= out_max;
}

/* Geometry of a convolution or pooling window, channels aside. */
static inline bool peft_conv_geometry_ok(const peft_conv_params *p)
{
	return p != NULL && peft_dims_ok(&p->in) && peft_dims_ok(&p->out) &&
	       peft_axis_ok(p->in.h, p->out.h, p->kernel_h, p->stride_h, p->pad_top) &&
	       peft_axis_ok(p->in.w, p->out.w, p->kernel_w, p->stride_w, p->pad_left);
}

/* CONV_2D: any channel counts; the [out_c][kh][kw][in_c] weights fit int32. */
static inline bool peft_conv2d_params_ok(const peft_conv_params *p)
{
	return peft_conv_geometry_ok(p) &&
	       peft_size_ok(p->out.c, p->kernel_h, p->kernel_w, p->in.c);
}

/* DEPTHWISE_CONV_2D and AVERAGE_POOL_2D: channels map one to one. */
static inline bool peft_depthwise_params_ok(const peft_conv_params *p)
{
	return peft_conv_geometry_ok(p) && p->in.c == p->out.c &&
	       peft_size_ok(p->kernel_h, p->kernel_w, p->in.c, 1);
}

/* AVERAGE_POOL_2D: the depthwise geometry, plus every window covers at least
 * one input element (the first starts before its leading padding ends, the
 * last starts inside the input), so no count is zero. The plan loader checks
 * the same (kernels/avg_pool2d/peft_avg_pool2d_op.c). */
static inline bool peft_avg_pool2d_params_ok(const peft_conv_params *p)
{
	return peft_depthwise_params_ok(p) && p->pad_top < p->kernel_h &&
	       p->pad_left < p->kernel_w &&
	       (int64_t)(p->out.h - 1) * p->stride_h - p->pad_top < p->in.h &&
	       (int64_t)(p->out.w - 1) * p->stride_w - p->pad_left < p->in.w;
}

/* The output position that reads input position `i` through kernel tap `k`
 * (i == out * stride - pad + k), or -1 when none does: the stride skips it or
 * it falls outside the output. Backward kernels gather with it. */
static inline int32_t peft_out_index(int32_t i, int32_t k, int32_t stride, int32_t pad,
				     int32_t out_n)
{
	int32_t num = i + pad - k;

	if (num < 0 || num % stride != 0 || num / stride >= out_n) {
		return -1;
	}
	return num / stride;
}

/* FULLY_CONNECTED: positive sizes, every buffer's size fits int32. */
static inline bool peft_fc_params_ok(const peft_fc_params *p)
{
	return p != NULL && peft_size_ok(p->rows, p->in_features, 1, 1) &&
	       peft_size_ok(p->rows, p->out_features, 1, 1) &&
	       peft_size_ok(p->out_features, p->in_features, 1, 1);
}

/* Frozen int8 weights: data and scales present, one scale or one per channel. */
static inline bool peft_weights_s8_ok(const peft_weights_s8 *w, int32_t channels)
{
	return w != NULL && w->data != NULL && w->scales != NULL &&
	       (w->scale_count == 1 || w->scale_count == channels);
}

static inline float peft_weight_scale(const peft_weights_s8 *w, int32_t channel)
{
	return w->scales[w->scale_count == 1 ? 0 : channel];
}

/* Rows the int8 path quantizes at once (PEFT_S8S8_ROWS, peft_formats.h, or
 * every row of a smaller call), and the bytes of scratch it needs (the same for
 * every backend): that many quantized rows and 4 widened weight columns, each
 * padded to a pair of int16, and one float scale per row. */
static inline int32_t peft_s8s8_chunk_rows(const peft_fc_params *p)
{
	return p->rows < PEFT_S8S8_ROWS ? p->rows : PEFT_S8S8_ROWS;
}

static inline int32_t peft_s8s8_scratch_bytes(const peft_fc_params *p)
{
	const int32_t pairs = p->out_features + p->out_features % 2;
	const int32_t rows = peft_s8s8_chunk_rows(p);

	return (int32_t)sizeof(int16_t) * pairs * (rows + 4) + (int32_t)sizeof(float) * rows;
}

/* The int8 path's argument checks. */
static inline bool peft_s8s8_args_ok(const peft_fc_params *p, const peft_weights_s8 *w,
				     const float *grad_out, const float *grad_in,
				     const int16_t *scratch, int32_t scratch_bytes)
{
	return peft_fc_params_ok(p) && grad_out != NULL && grad_in != NULL && scratch != NULL &&
	       peft_weights_s8_ok(w, p->out_features) &&
	       scratch_bytes >= peft_s8s8_scratch_bytes(p);
}

#endif /* PEFT_KERNEL_CHECK_H */
