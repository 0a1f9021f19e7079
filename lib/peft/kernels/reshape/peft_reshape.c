/* RESHAPE in the op table (ops/peft_ops.h): batch-1 NHWC data: the same values in the same
 * order. */
#include <stddef.h>
#include <string.h>

#include "../../ops/peft_ops.h"

static bool reshape_shapes_ok(const peft_op_shapes *s)
{
	return s->in_size == s->out_size;
}

static peft_status reshape_forward(const peft_op_forward_args *a)
{
	memcpy(a->out, a->x[0], (size_t)a->layer->out_size * sizeof(float));
	return PEFT_OK;
}

static peft_status reshape_backward(const peft_op_backward_args *a)
{
	/* The gradient passes through unchanged (added, when accumulating). */
	return a->grad_in[0] == NULL ? PEFT_OK
				     : peft_add_bwd_input_f32(a->layer->out_size, a->g,
							      a->grad_in[0], a->accumulate[0]);
}

const peft_op peft_op_reshape = {
	.num_inputs = 1,
	.stacks_samples = true,
	.shapes_ok = reshape_shapes_ok,
	.forward = reshape_forward,
	.backward = reshape_backward,
};
