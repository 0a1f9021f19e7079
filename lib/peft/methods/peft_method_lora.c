/* LoRA on a 1x1 stride-1 convolution or a fully connected layer:
 * out += (alpha / r) * B (A x) (after scale+shift, before the activation, as
 * scripts/micropeft/host/reference.py),  with A (r x in) and B (out x r) in the FC
 * weight layout. As in HF PEFT, B starts at zero (the untrained layer is
 * unchanged) and A is kaiming-uniform-like, U(-1/sqrt(in), 1/sqrt(in)), drawn
 * from xorshift32 seeded with (seed ^ (0x9E3779B9 * (graph_layer + 1))) | 1:
 * x ^= x << 13; x ^= x >> 17; x ^= x << 5; value = bound * (2 u - 1) with
 * u = (x >> 8) / 2^24, row-major. scripts/micropeft/planning/plan.py lora_a_init()
 * computes the same values.
 *
 * The forward keeps u = (alpha / r) * A x (train: in the activation cache),
 * so that dB = g^T u and du = (alpha / r) * B^T g. */
#include <math.h>
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_method.h"

static peft_status lora_init(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	uint32_t x = (ctx->seed ^ (0x9E3779B9u * ((uint32_t)L->rec.graph_layer + 1u))) | 1u;
	const float bound = 1.0f / sqrtf((float)L->in_features);

	for (int32_t i = 0; i < L->counts[PEFT_PARAM_LORA_A]; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		const float u = (float)(x >> 8) * (1.0f / 16777216.0f);

		ctx->param[PEFT_PARAM_LORA_A][i] = bound * (2.0f * u - 1.0f);
	}
	for (int32_t i = 0; i < L->counts[PEFT_PARAM_LORA_B]; i++) {
		ctx->param[PEFT_PARAM_LORA_B][i] = 0.0f;
	}
	return PEFT_OK;
}

static float lora_scale(const peft_layer_info *L)
{
	return L->rec.lora_alpha / (float)L->rec.lora_rank;
}

static void scale_in_place(int32_t n, float s, float *x)
{
	for (int32_t i = 0; i < n; i++) {
		x[i] *= s;
	}
}

static peft_status lora_fwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t r = L->rec.lora_rank;
	const peft_fc_params down = {L->rows, L->in_features, r};
	const peft_fc_params up = {L->rows, r, L->out_features};
	peft_status st =
		peft_fc_fwd_f32(&down, ctx->x, ctx->param[PEFT_PARAM_LORA_A], NULL, ctx->u);

	if (st != PEFT_OK) {
		return st;
	}
	scale_in_place(L->rows * r, lora_scale(L), ctx->u);
	st = peft_fc_fwd_f32(&up, ctx->u, ctx->param[PEFT_PARAM_LORA_B], NULL, ctx->tmp_a);
	if (st != PEFT_OK) {
		return st;
	}
	return peft_add_fwd_f32(L->out_size, ctx->out, ctx->tmp_a, ctx->out);
}

static peft_status lora_bwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t r = L->rec.lora_rank;
	const peft_fc_params down = {L->rows, L->in_features, r};
	const peft_fc_params up = {L->rows, r, L->out_features};
	float *du = ctx->tmp_b;
	peft_status st =
		peft_fc_bwd_weight_f32(&up, ctx->u, ctx->g_out, ctx->grad[PEFT_PARAM_LORA_B]);

	if (st != PEFT_OK) {
		return st;
	}
	st = peft_fc_bwd_input_f32(&up, ctx->param[PEFT_PARAM_LORA_B], ctx->g_out, du, false);
	if (st != PEFT_OK) {
		return st;
	}
	scale_in_place(L->rows * r, lora_scale(L), du);
	st = peft_fc_bwd_weight_f32(&down, ctx->x, du, ctx->grad[PEFT_PARAM_LORA_A]);
	if (st != PEFT_OK || ctx->grad_in == NULL) {
		return st;
	}
	/* The frozen path wrote grad_in first, so the adapter adds to it. */
	return peft_fc_bwd_input_f32(&down, ctx->param[PEFT_PARAM_LORA_A], du, ctx->grad_in, true);
}

const peft_method peft_method_lora = {
	.flag = PEFT_METHOD_LORA,
	.name = "lora",
	.trains = (1u << PEFT_PARAM_LORA_A) | (1u << PEFT_PARAM_LORA_B),
	.init = lora_init,
	.fwd_adapter = lora_fwd,
	.bwd_adapter = lora_bwd,
};
