/* ADD (residual connection): out = a + b. Both inputs receive grad_out
 * unchanged, so the backward kernel is called once per input. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "../../ops/peft_ops.h"
#include "../../common/peft_try.h"

peft_status peft_add_fwd_f32(int32_t n, const float *a, const float *b, float *out)
{
	if (n <= 0 || a == NULL || b == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		out[i] = a[i] + b[i];
	}
	return PEFT_OK;
}

peft_status peft_add_bwd_input_f32(int32_t n, const float *grad_out, float *grad_in,
				   bool accumulate)
{
	if (n <= 0 || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		grad_in[i] = accumulate ? grad_in[i] + grad_out[i] : grad_out[i];
	}
	return PEFT_OK;
}

/* ADD in the op table (ops/peft_ops.h): elementwise, two inputs of one shape. */
static bool dims_equal(const peft_dims *a, const peft_dims *b)
{
	return a->h == b->h && a->w == b->w && a->c == b->c;
}

static bool add_shapes_ok(const peft_op_shapes *s)
{
	return dims_equal(&s->in[0], &s->out) && dims_equal(&s->in[1], &s->out);
}

static peft_status add_forward(const peft_op_forward_args *a)
{
	return peft_add_fwd_f32(a->layer->out_size, a->x[0], a->x[1], a->out);
}

static peft_status add_backward(const peft_op_backward_args *a)
{
	for (int j = 0; j < 2; j++) {
		if (a->grad_in[j] != NULL) {
			PEFT_TRY(peft_add_bwd_input_f32(a->layer->out_size, a->g, a->grad_in[j],
							a->accumulate[j]));
		}
	}
	return PEFT_OK;
}

const peft_op peft_op_add = {
	.num_inputs = 2,
	.stacks_samples = true,
	.shapes_ok = add_shapes_ok,
	.forward = add_forward,
	.backward = add_backward,
};
