/* PAD with zeros on the spatial dims: out[y + pad_top][x + pad_left][c] =
 * in[y][x][c], every other output element is zero. Backward crops grad_out. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"
#include "../../ops/peft_ops.h"

/* Channels unchanged; the input fits in the output after the leading pads
 * (the trailing pads are out - in - leading, never negative). */
static bool pad_params_ok(const peft_pad_params *p)
{
	return p != NULL && peft_dims_ok(&p->in) && peft_dims_ok(&p->out) && p->in.c == p->out.c &&
	       p->pad_top >= 0 && p->pad_left >= 0 && p->pad_top <= p->out.h - p->in.h &&
	       p->pad_left <= p->out.w - p->in.w;
}

peft_status peft_pad_fwd_f32(const peft_pad_params *p, const float *in, float *out)
{
	if (!pad_params_ok(p) || in == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t ch = p->in.c;

	for (int32_t oy = 0; oy < p->out.h; oy++) {
		int32_t iy = oy - p->pad_top;

		for (int32_t ox = 0; ox < p->out.w; ox++) {
			int32_t ix = ox - p->pad_left;
			float *o = out + (oy * p->out.w + ox) * ch;
			bool inside = iy >= 0 && iy < p->in.h && ix >= 0 && ix < p->in.w;

			for (int32_t c = 0; c < ch; c++) {
				o[c] = inside ? in[(iy * p->in.w + ix) * ch + c] : 0.0f;
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_pad_bwd_input_f32(const peft_pad_params *p, const float *grad_out, float *grad_in,
				   bool accumulate)
{
	if (!pad_params_ok(p) || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t ch = p->in.c;

	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			const float *g =
				grad_out + ((iy + p->pad_top) * p->out.w + ix + p->pad_left) * ch;
			float *gi = grad_in + (iy * p->in.w + ix) * ch;

			for (int32_t c = 0; c < ch; c++) {
				gi[c] = accumulate ? gi[c] + g[c] : g[c];
			}
		}
	}
	return PEFT_OK;
}

/* PAD in the op table (ops/peft_ops.h): zeros at the top/left by pad_top/pad_left, the rest
 * at the bottom/right. */
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
