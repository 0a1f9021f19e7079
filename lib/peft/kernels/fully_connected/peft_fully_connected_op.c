/* FULLY_CONNECTED in the op table (ops/peft_ops.h): rows of in_features (a flattening
 * reshape included). */
#include <stddef.h>

#include "../../ops/peft_ops.h"
#include "../../common/peft_try.h"

static bool fc_shapes_ok(const peft_op_shapes *s)
{
	const uint32_t count = s->rec->weights.count;
	const uint32_t in_features = count / (uint32_t)s->out.c;

	return count % (uint32_t)s->out.c == 0 && in_features != 0 &&
	       s->in_size % in_features == 0 &&
	       (s->in_size / in_features) * s->out.c == s->out_size;
}

static peft_status fc_forward(const peft_op_forward_args *a)
{
	const peft_fc_params fp = peft_op_fc_params(a->layer);

	return a->weight != NULL ? peft_fc_fwd_f32(&fp, a->x[0], a->weight, a->bias, a->out)
				 : peft_fc_fwd_s8(&fp, a->x[0], a->frozen, a->bias, a->out);
}

static peft_status fc_backward(const peft_op_backward_args *a)
{
	const peft_fc_params fp = peft_op_fc_params(a->layer);

	if (a->grad_bias != NULL) {
		PEFT_TRY(peft_fc_bwd_bias_f32(&fp, a->g, a->grad_bias));
	}
	if (a->grad_weight != NULL) {
		PEFT_TRY(peft_fc_bwd_weight_f32(&fp, a->x, a->g, a->grad_weight));
	}
	if (a->grad_in[0] == NULL) {
		return PEFT_OK;
	}
	return a->weight != NULL ? peft_fc_bwd_input_f32(&fp, a->weight, a->g, a->grad_in[0],
							 a->accumulate[0])
				 : peft_fc_bwd_input_s8(&fp, a->frozen, a->g, a->grad_in[0],
							a->accumulate[0]);
}

const peft_op peft_op_fully_connected = {
	.num_inputs = 1,
	.stacks_samples = true,
	.shapes_ok = fc_shapes_ok,
	.forward = fc_forward,
	.backward = fc_backward,
	.linear = true,
};
