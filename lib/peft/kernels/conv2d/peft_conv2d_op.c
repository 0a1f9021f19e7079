/* CONV_2D in the op table (ops/peft_ops.h): conv 2D; int8 weights read in place, or their
 * float32 copy when they train. */
#include <stddef.h>

#include "../../ops/peft_ops.h"
#include "../../common/peft_try.h"

static bool conv2d_shapes_ok(const peft_op_shapes *s)
{
	const peft_layer_rec *r = s->rec;

	return peft_op_product_is(r->weights.count, s->out.c, r->kernel_h, r->kernel_w, s->in[0].c);
}

static peft_status conv2d_forward(const peft_op_forward_args *a)
{
	const peft_conv_params cp = peft_op_conv_params(a->layer);

	return a->weight != NULL ? peft_conv2d_fwd_f32(&cp, a->x[0], a->weight, a->bias, a->out)
				 : peft_conv2d_fwd_s8(&cp, a->x[0], a->frozen, a->bias, a->out);
}

static peft_status conv2d_backward(const peft_op_backward_args *a)
{
	const peft_conv_params cp = peft_op_conv_params(a->layer);

	if (a->grad_bias != NULL) {
		PEFT_TRY(peft_conv2d_bwd_bias_f32(&a->layer->out, a->g, a->grad_bias));
	}
	if (a->grad_weight != NULL) {
		PEFT_TRY(peft_conv2d_bwd_weight_f32(&cp, a->x, a->g, a->grad_weight));
	}
	if (a->grad_in[0] == NULL) {
		return PEFT_OK;
	}
	return a->weight != NULL ? peft_conv2d_bwd_input_f32(&cp, a->weight, a->g, a->grad_in[0],
							     a->accumulate[0])
				 : peft_conv2d_bwd_input_s8(&cp, a->frozen, a->g, a->grad_in[0],
							    a->accumulate[0]);
}

const peft_op peft_op_conv_2d = {
	.num_inputs = 1,
	.shapes_ok = conv2d_shapes_ok,
	.forward = conv2d_forward,
	.backward = conv2d_backward,
	.linear = true,
	.window = true,
};
