/* Per-channel scale and shift: out = lin * gamma + beta after the layer's
 * linear output (+ bias), before LoRA adds its branch and before the fused
 * activation (scripts/micropeft/host/reference.py has the same order). Stands in
 * for BatchNorm tuning, which TFLite folds into the convolution. gamma starts
 * at 1 and beta at 0, so the untrained layer is unchanged. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_method.h"

static peft_status ss_init(peft_layer_ctx *ctx)
{
	const int32_t n = ctx->info->counts[PEFT_PARAM_GAMMA];

	for (int32_t i = 0; i < n; i++) {
		ctx->param[PEFT_PARAM_GAMMA][i] = 1.0f;
		ctx->param[PEFT_PARAM_BETA][i] = 0.0f;
	}
	return PEFT_OK;
}

static peft_status ss_fwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;

	return peft_scale_shift_fwd_f32(L->out_size / L->out_features, L->out_features, ctx->lin,
					ctx->param[PEFT_PARAM_GAMMA], ctx->param[PEFT_PARAM_BETA],
					ctx->out);
}

/* The gradient wrt lin goes to tmp_a: the kernels do not promise in-place use.
 * ctx->lin may be tmp_a itself (the trainer stages an int8-kept lin there): it
 * is read, by the parameter gradients, before tmp_a is written. */
static peft_status ss_bwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t pixels = L->out_size / L->out_features;
	peft_status st = peft_scale_shift_bwd_param_f32(pixels, L->out_features, ctx->lin, ctx->g,
							ctx->grad[PEFT_PARAM_GAMMA],
							ctx->grad[PEFT_PARAM_BETA]);

	if (st != PEFT_OK) {
		return st;
	}
	st = peft_scale_shift_bwd_input_f32(pixels, L->out_features, ctx->param[PEFT_PARAM_GAMMA],
					    ctx->g, ctx->tmp_a, false);
	if (st != PEFT_OK) {
		return st;
	}
	ctx->g = ctx->tmp_a;
	return PEFT_OK;
}

const peft_method peft_method_scale_shift = {
	.flag = PEFT_METHOD_SCALE_SHIFT,
	.name = "scale_shift",
	.trains = (1u << PEFT_PARAM_GAMMA) | (1u << PEFT_PARAM_BETA),
	.init = ss_init,
	.fwd_affine = ss_fwd,
	.bwd_affine = ss_bwd,
};
