/* AVERAGE_POOL_2D in the op table (ops/peft_ops.h): window from kernel, stride and padding. */
#include <stddef.h>

#include "../../ops/peft_ops.h"
#include "../peft_kernel_check.h"

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
