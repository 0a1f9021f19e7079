/* IA3 (HF PEFT's IA3Config on a target module that is not a feedforward
 * module): out = lin * l, a trained scaling vector l per output channel of
 * the layer's output (bias included, as HF scales base_layer(x)), before the
 * fused activation; l starts at 1, so the untrained layer is unchanged. Like
 * scale+shift (which it excludes on a layer) the forward keeps lin, and
 *   dl_c = sum over pixels of g_c lin_c,   g_lin = l g.
 * Any convolution (pointwise, general, depthwise) or fully connected layer. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_method.h"

static peft_status ia3_init(peft_layer_ctx *ctx)
{
	for (int32_t c = 0; c < ctx->info->counts[PEFT_PARAM_IA3_L]; c++) {
		ctx->param[PEFT_PARAM_IA3_L][c] = 1.0f;
	}
	return PEFT_OK;
}

static peft_status ia3_fwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_out = L->out_features;
	const float *l = ctx->param[PEFT_PARAM_IA3_L];

	for (int32_t p = 0; p < L->out_size; p += n_out) {
		for (int32_t c = 0; c < n_out; c++) {
			ctx->out[p + c] = ctx->lin[p + c] * l[c];
		}
	}
	return PEFT_OK;
}

/* As scale+shift's (dl is its gamma gradient, without a beta): the gradient
 * wrt lin goes to tmp_a, which ctx->lin may be (an int8-kept lin staged
 * there): lin is read before tmp_a is written. */
static peft_status ia3_bwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_out = L->out_features;
	const int32_t pixels = L->out_size / n_out;
	peft_status st = peft_scale_shift_bwd_param_f32(pixels, n_out, ctx->lin, ctx->g,
							ctx->grad[PEFT_PARAM_IA3_L], NULL);

	if (st != PEFT_OK) {
		return st;
	}
	st = peft_scale_shift_bwd_input_f32(pixels, n_out, ctx->param[PEFT_PARAM_IA3_L], ctx->g,
					    ctx->tmp_a, false);
	if (st != PEFT_OK) {
		return st;
	}
	ctx->g = ctx->tmp_a;
	return PEFT_OK;
}

const peft_method peft_method_ia3 = {
	.flag = PEFT_METHOD_IA3,
	.name = "ia3",
	.trains = (1u << PEFT_PARAM_IA3_L),
	.init = ia3_init,
	.fwd_affine = ia3_fwd,
	.bwd_affine = ia3_bwd,
};
