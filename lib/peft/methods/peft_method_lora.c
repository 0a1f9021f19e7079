/* LoRA on a 1x1 stride-1 convolution or a fully connected layer:
 * out += (alpha / r) * B (A x) (after scale+shift, before the activation, as
 * scripts/micropeft/host/reference.py). The branch, its initialisation and what the
 * forward keeps: peft_lora_branch.h (shared with DoRA). */
#include "peft/peft_kernels.h"
#include "peft_lora_branch.h"
#include "peft_method.h"

static peft_status lora_init(peft_layer_ctx *ctx)
{
	peft_lora_branch_init(ctx);
	return PEFT_OK;
}

static peft_status lora_fwd(peft_layer_ctx *ctx)
{
	const peft_status st = peft_lora_branch_fwd_u(ctx);

	if (st != PEFT_OK) {
		return st;
	}
	/* (rounds_lora: the trainer's forward used the rounded W0 + s B A; u stays kept) */
	if (!ctx->info->rounds_lora) {
		peft_lora_branch_add_up(ctx, ctx->out);
	}
	return PEFT_OK;
}

static peft_status lora_bwd(peft_layer_ctx *ctx)
{
	return peft_lora_branch_bwd(ctx, ctx->g_out);
}

const peft_method peft_method_lora = {
	.flag = PEFT_METHOD_LORA,
	.name = "lora",
	.trains = (1u << PEFT_PARAM_LORA_A) | (1u << PEFT_PARAM_LORA_B),
	.init = lora_init,
	.fwd_adapter = lora_fwd,
	.bwd_adapter = lora_bwd,
};
