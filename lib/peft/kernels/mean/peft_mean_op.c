/* MEAN in the op table (ops/peft_ops.h): over height and width. */
#include <stddef.h>

#include "../../ops/peft_ops.h"

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
