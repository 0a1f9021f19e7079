/* PAD in the op table (ops/peft_ops.h): zeros at the top/left by pad_top/pad_left, the rest
 * at the bottom/right. */
#include <stddef.h>

#include "../../ops/peft_ops.h"

static peft_pad_params pad_params(const peft_layer_info *L)
{
	return (peft_pad_params){L->in[0], L->out, L->rec.pad_top, L->rec.pad_left};
}

static bool pad_shapes_ok(const peft_op_shapes *s)
{
	const peft_layer_rec *r = s->rec;

	return s->in[0].c == s->out.c && r->pad_top >= 0 && r->pad_left >= 0 &&
	       (int64_t)s->out.h >= (int64_t)s->in[0].h + r->pad_top &&
	       (int64_t)s->out.w >= (int64_t)s->in[0].w + r->pad_left;
}

static peft_status pad_forward(const peft_op_forward_args *a)
{
	const peft_pad_params pp = pad_params(a->layer);

	return peft_pad_fwd_f32(&pp, a->x[0], a->out);
}

static peft_status pad_backward(const peft_op_backward_args *a)
{
	const peft_pad_params pp = pad_params(a->layer);

	return a->grad_in[0] == NULL
		       ? PEFT_OK
		       : peft_pad_bwd_input_f32(&pp, a->g, a->grad_in[0], a->accumulate[0]);
}

const peft_op peft_op_pad = {
	.num_inputs = 1,
	.shapes_ok = pad_shapes_ok,
	.forward = pad_forward,
	.backward = pad_backward,
};
