/* AVERAGE_POOL_2D: each output is the mean of the input elements its window
 * covers, padding excluded (TFLite divides by the count of non-padding
 * elements, as TF does for SAME padding). Backward gives each covered input
 * element grad_out / count. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"
#include "../../ops/peft_ops.h"

static int32_t max_i32(int32_t a, int32_t b)
{
	return a > b ? a : b;
}

static int32_t min_i32(int32_t a, int32_t b)
{
	return a < b ? a : b;
}

/* Number of input elements under the window of output (oy, ox). */
static int32_t window_count(const peft_conv_params *p, int32_t oy, int32_t ox)
{
	int32_t y0 = oy * p->stride_h - p->pad_top;
	int32_t x0 = ox * p->stride_w - p->pad_left;
	int32_t rows = min_i32(y0 + p->kernel_h, p->in.h) - max_i32(y0, 0);
	int32_t cols = min_i32(x0 + p->kernel_w, p->in.w) - max_i32(x0, 0);

	return rows * cols;
}

/* Mean of channel c under the window of output (oy, ox). */
static float window_mean(const peft_conv_params *p, const float *in, int32_t oy, int32_t ox,
			 int32_t c)
{
	int32_t y0 = oy * p->stride_h - p->pad_top;
	int32_t x0 = ox * p->stride_w - p->pad_left;
	float acc = 0.0f;

	for (int32_t iy = max_i32(y0, 0); iy < min_i32(y0 + p->kernel_h, p->in.h); iy++) {
		for (int32_t ix = max_i32(x0, 0); ix < min_i32(x0 + p->kernel_w, p->in.w); ix++) {
			acc += in[(iy * p->in.w + ix) * p->in.c + c];
		}
	}
	return acc / (float)window_count(p, oy, ox);
}

peft_status peft_avg_pool2d_fwd_f32(const peft_conv_params *p, const float *in, float *out)
{
	if (!peft_avg_pool2d_params_ok(p) || in == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			float *o = out + (oy * p->out.w + ox) * p->out.c;

			for (int32_t c = 0; c < p->out.c; c++) {
				o[c] = window_mean(p, in, oy, ox, c);
			}
		}
	}
	return PEFT_OK;
}

/* sum of grad_out / count over the windows that cover input (iy, ix). */
static float gather(const peft_conv_params *p, const float *grad_out, int32_t iy, int32_t ix,
		    int32_t c)
{
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy = peft_out_index(iy, ky, p->stride_h, p->pad_top, p->out.h);

		if (oy < 0) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ox = peft_out_index(ix, kx, p->stride_w, p->pad_left, p->out.w);

			if (ox >= 0) {
				acc += grad_out[(oy * p->out.w + ox) * p->out.c + c] /
				       (float)window_count(p, oy, ox);
			}
		}
	}
	return acc;
}

peft_status peft_avg_pool2d_bwd_input_f32(const peft_conv_params *p, const float *grad_out,
					  float *grad_in, bool accumulate)
{
	if (!peft_avg_pool2d_params_ok(p) || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	/* Gathered: each input element is written once. */
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;

			for (int32_t c = 0; c < p->in.c; c++) {
				float acc = gather(p, grad_out, iy, ix, c);

				gi[c] = accumulate ? gi[c] + acc : acc;
			}
		}
	}
	return PEFT_OK;
}

/* AVERAGE_POOL_2D in the op table (ops/peft_ops.h): window from kernel, stride and padding. */
/* The kernel's own check: a plan the loader accepts never meets PEFT_ERR_ARG in it. */
static bool avg_pool_shapes_ok(const peft_op_shapes *s)
{
	const peft_layer_rec *r = s->rec;
	const peft_conv_params p = {s->in[0],    s->out,      r->kernel_h, r->kernel_w,
				    r->stride_h, r->stride_w, r->pad_top,  r->pad_left};

	return peft_avg_pool2d_params_ok(&p);
}

static peft_status avg_pool_forward(const peft_op_forward_args *a)
{
	const peft_conv_params cp = peft_op_conv_params(a->layer);

	return peft_avg_pool2d_fwd_f32(&cp, a->x[0], a->out);
}

static peft_status avg_pool_backward(const peft_op_backward_args *a)
{
	const peft_conv_params cp = peft_op_conv_params(a->layer);

	return a->grad_in[0] == NULL
		       ? PEFT_OK
		       : peft_avg_pool2d_bwd_input_f32(&cp, a->g, a->grad_in[0], a->accumulate[0]);
}

const peft_op peft_op_average_pool_2d = {
	.num_inputs = 1,
	.shapes_ok = avg_pool_shapes_ok,
	.forward = avg_pool_forward,
	.backward = avg_pool_backward,
	.window = true,
};
