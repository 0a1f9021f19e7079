/* MEAN over H and W (global average pooling): out[c] is the average of
 * in[y][x][c] over all pixels; backward spreads grad_out[c] / (h * w) evenly. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"
#include "../../ops/peft_ops.h"

peft_status peft_mean_fwd_f32(const peft_dims *in, const float *x, float *out)
{
	if (!peft_dims_ok(in) || x == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t pixels = in->h * in->w;

	for (int32_t c = 0; c < in->c; c++) {
		float acc = 0.0f;

		for (int32_t i = 0; i < pixels; i++) {
			acc += x[i * in->c + c];
		}
		out[c] = acc / (float)pixels;
	}
	return PEFT_OK;
}

peft_status peft_mean_bwd_input_f32(const peft_dims *in, const float *grad_out, float *grad_in,
				    bool accumulate)
{
	if (!peft_dims_ok(in) || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t pixels = in->h * in->w;

	for (int32_t i = 0; i < pixels; i++) {
		float *gi = grad_in + i * in->c;

		for (int32_t c = 0; c < in->c; c++) {
			float g = grad_out[c] / (float)pixels;

			gi[c] = accumulate ? gi[c] + g : g;
		}
	}
	return PEFT_OK;
}

/* MEAN in the op table (ops/peft_ops.h): over height and width. */
static bool mean_shapes_ok(const peft_op_shapes *s)
{
	return s->out.h == 1 && s->out.w == 1 && s->out.c == s->in[0].c;
}

static peft_status mean_forward(const peft_op_forward_args *a)
{
	return peft_mean_fwd_f32(&a->layer->in[0], a->x[0], a->out);
}

static peft_status mean_backward(const peft_op_backward_args *a)
{
	return a->grad_in[0] == NULL ? PEFT_OK
				     : peft_mean_bwd_input_f32(&a->layer->in[0], a->g,
							       a->grad_in[0], a->accumulate[0]);
}

const peft_op peft_op_mean = {
	.num_inputs = 1,
	.shapes_ok = mean_shapes_ok,
	.forward = mean_forward,
	.backward = mean_backward,
};
