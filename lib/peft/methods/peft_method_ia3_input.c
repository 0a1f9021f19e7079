/* IA3 on a feedforward module (HF PEFT's IA3Config on a target module that
 * is also in feedforward_modules): lin = W (l x) + b, a trained scaling vector
 * l per input channel of the layer's input (the input features of a fully
 * connected layer; a convolution's input channels, scaled before the window,
 * so padding stays 0), starting at 1. The weights stay frozen; with gx the
 * gradient wrt l x (the op's input gradient, kernel taps summed in it):
 *   dl_c = sum over pixels of x_c gx_c,   grad_in = l gx.
 * The forward runs the linear kernel on the scratch l x (FWD_XS); backward
 * reads the kept input and the op writes gx to its scratch (BWD_GX). No other
 * method that reads the input or scales the layer shares the layer (no weight
 * training, LoRA, DoRA, output IA3: the plan loader refuses them). */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_method.h"

static peft_status ia3_input_init(peft_layer_ctx *ctx)
{
	for (int32_t c = 0; c < ctx->info->counts[PEFT_PARAM_IA3_IN]; c++) {
		ctx->param[PEFT_PARAM_IA3_IN][c] = 1.0f;
	}
	return PEFT_OK;
}

static peft_status ia3_input_fwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_in = L->in_features;
	const float *l = ctx->param[PEFT_PARAM_IA3_IN];

	if (ctx->x_scaled == NULL || n_in <= 0) {
		return PEFT_ERR_ARG;
	}
	for (int32_t p = 0; p < L->in_size[0]; p += n_in) {
		for (int32_t c = 0; c < n_in; c++) {
			ctx->x_scaled[p + c] = ctx->x[p + c] * l[c];
		}
	}
	ctx->x = ctx->x_scaled;
	return PEFT_OK;
}

static peft_status ia3_input_bwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_in = L->in_features;
	const float *l = ctx->param[PEFT_PARAM_IA3_IN];
	float *dl = ctx->grad[PEFT_PARAM_IA3_IN];

	if (ctx->gx == NULL || ctx->x == NULL || n_in <= 0) {
		return PEFT_ERR_ARG;
	}
	const int32_t pixels = L->in_size[0] / n_in;
	/* dl is scale+shift's gamma gradient (without a beta) */
	const peft_status st =
		peft_scale_shift_bwd_param_f32(pixels, n_in, ctx->x, ctx->gx, dl, NULL);

	if (st != PEFT_OK || ctx->grad_in == NULL) {
		return st;
	}
	return peft_scale_shift_bwd_input_f32(pixels, n_in, l, ctx->gx, ctx->grad_in,
					      ctx->grad_in_accumulate);
}

const peft_method peft_method_ia3_input = {
	.flag = PEFT_METHOD_IA3_INPUT,
	.name = "ia3_input",
	.trains = (1u << PEFT_PARAM_IA3_IN),
	.init = ia3_input_init,
	.fwd_input = ia3_input_fwd,
	.bwd_input = ia3_input_bwd,
};
