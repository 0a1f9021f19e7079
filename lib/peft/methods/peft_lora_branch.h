/* LoRA's low-rank branch, shared by LoRA and DoRA (private to lib/peft/methods).
 *
 * branch = (alpha / r) * B (A x) on a 1x1 stride-1 convolution or a fully
 * connected layer, with A (r x in) and B (out x r) in the FC weight layout. As
 * in HF PEFT, B starts at zero and A is kaiming-uniform-like,
 * U(-1/sqrt(in), 1/sqrt(in)), drawn from xorshift32 seeded with
 * (seed ^ (0x9E3779B9 * (graph_layer + 1))) | 1: x ^= x << 13; x ^= x >> 17;
 * x ^= x << 5; value = bound * (2 u - 1) with u = (x >> 8) / 2^24, row-major.
 * scripts/micropeft/planning/plan.py lora_a_init() computes the same values.
 *
 * The forward keeps u = (alpha / r) * A x (train: in the activation cache), so
 * that dB = g^T u and du = (alpha / r) * B^T g. Static inline: each method file
 * compiles on its own (Kconfig may leave either out). */
#ifndef PEFT_LORA_BRANCH_H
#define PEFT_LORA_BRANCH_H

#include <math.h>
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_method.h"

static inline void peft_lora_branch_init(peft_layer_ctx *ctx)
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
}

static inline float peft_lora_branch_scale(const peft_layer_info *L)
{
	return L->rec.lora_alpha / (float)L->rec.lora_rank;
}

static inline void peft_lora_scale_in_place(int32_t n, float s, float *x)
{
	for (int32_t i = 0; i < n; i++) {
		x[i] *= s;
	}
}

/* ctx->u = (alpha / r) A x (rows x r). */
static inline peft_status peft_lora_branch_fwd_u(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t r = L->rec.lora_rank;
	const peft_fc_params down = {L->rows, L->in_features, r};
	const peft_status st =
		peft_fc_fwd_f32(&down, ctx->x, ctx->param[PEFT_PARAM_LORA_A], NULL, ctx->u);

	if (st != PEFT_OK) {
		return st;
	}
	peft_lora_scale_in_place(L->rows * r, peft_lora_branch_scale(L), ctx->u);
	return PEFT_OK;
}

/* ctx->u as above and ctx->tmp_a = B u (the branch, rows x out): DoRA's form. */
static inline peft_status peft_lora_branch_fwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const peft_fc_params up = {L->rows, L->rec.lora_rank, L->out_features};
	const peft_status st = peft_lora_branch_fwd_u(ctx);

	if (st != PEFT_OK) {
		return st;
	}
	return peft_fc_fwd_f32(&up, ctx->u, ctx->param[PEFT_PARAM_LORA_B], NULL, ctx->tmp_a);
}

/* out += B u, each element's branch summed first (as B u, then the add): no
 * buffer of the branch's rows x out values. */
static inline void peft_lora_branch_add_up(const peft_layer_ctx *ctx, float *out)
{
	const peft_layer_info *L = ctx->info;
	const int32_t r = L->rec.lora_rank;
	const int32_t n_out = L->out_features;
	const float *b = ctx->param[PEFT_PARAM_LORA_B];

	for (int32_t row = 0; row < L->rows; row++) {
		const float *u = ctx->u + (size_t)row * (size_t)r;
		float *o = out + (size_t)row * (size_t)n_out;

		for (int32_t c = 0; c < n_out; c++) {
			const float *bc = b + (size_t)c * (size_t)r;
			float acc = 0.0f;

			for (int32_t j = 0; j < r; j++) {
				acc += bc[j] * u[j];
			}
			o[c] += acc;
		}
	}
}

/* dA += du^T x. With x NULL, the int8-kept input is dequantised PEFT_BWD_IN_ROWS
 * rows at a time (the kernel adds into dA, so the row blocks sum). */
static inline peft_status peft_lora_branch_grad_a(const peft_layer_ctx *ctx, const float *du)
{
	const peft_layer_info *L = ctx->info;
	const int32_t r = L->rec.lora_rank;
	const int32_t in = L->in_features;

	if (ctx->x != NULL) {
		const peft_fc_params down = {L->rows, in, r};

		return peft_fc_bwd_weight_f32(&down, ctx->x, du, ctx->grad[PEFT_PARAM_LORA_A]);
	}
	for (int32_t row = 0; row < L->rows; row += PEFT_BWD_IN_ROWS) {
		const int32_t n =
			L->rows - row < PEFT_BWD_IN_ROWS ? L->rows - row : PEFT_BWD_IN_ROWS;
		const peft_fc_params block = {n, in, r};
		peft_status st = peft_dequantize_s8(n * in, ctx->x_kept + (size_t)row * (size_t)in,
						    ctx->x_scale, ctx->x_zero_point, ctx->x_stage);

		if (st == PEFT_OK) {
			st = peft_fc_bwd_weight_f32(&block, ctx->x_stage,
						    du + (size_t)row * (size_t)r,
						    ctx->grad[PEFT_PARAM_LORA_A]);
		}
		if (st != PEFT_OK) {
			return st;
		}
	}
	return PEFT_OK;
}

/* A and B gradients from g, the gradient wrt the branch output; adds the
 * branch's part of the input gradient to ctx->grad_in (written first by the
 * frozen path) when there is one. Uses ctx->tmp_b for du. */
static inline peft_status peft_lora_branch_bwd(peft_layer_ctx *ctx, const float *g)
{
	const peft_layer_info *L = ctx->info;
	const int32_t r = L->rec.lora_rank;
	const peft_fc_params down = {L->rows, L->in_features, r};
	const peft_fc_params up = {L->rows, r, L->out_features};
	float *du = ctx->tmp_b;
	peft_status st = peft_fc_bwd_weight_f32(&up, ctx->u, g, ctx->grad[PEFT_PARAM_LORA_B]);

	if (st != PEFT_OK) {
		return st;
	}
	st = peft_fc_bwd_input_f32(&up, ctx->param[PEFT_PARAM_LORA_B], g, du, false);
	if (st != PEFT_OK) {
		return st;
	}
	peft_lora_scale_in_place(L->rows * r, peft_lora_branch_scale(L), du);
	st = peft_lora_branch_grad_a(ctx, du);
	if (st != PEFT_OK || ctx->grad_in == NULL) {
		return st;
	}
	return peft_fc_bwd_input_f32(&down, ctx->param[PEFT_PARAM_LORA_A], du, ctx->grad_in, true);
}

#endif /* PEFT_LORA_BRANCH_H */
