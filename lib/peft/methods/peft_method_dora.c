/* DoRA (weight-decomposed low-rank adaptation) on a 1x1 stride-1 convolution
 * or a fully connected layer, as HF PEFT's use_dora:
 *
 *   W' = m * (W0 + s B A) / ||W0 + s B A||_c,   out = W' x + bias,
 *
 * with s = alpha / r, the LoRA branch of peft_lora_branch.h (A, B, u = s A x),
 * ||.||_c the L2 norm of output channel c's weight row, and m (one per output
 * channel) starting at ||W0||_c, so that the untrained layer is unchanged. The
 * norm is a constant in backward (HF PEFT detaches it, DoRA paper section
 * 4.3): with n = m / ||W0 + s B A||_c and dir = W0 x + s B A x,
 *
 *   dm_c = sum over rows of g_c dir_c / ||.||_c,  and the rest of the layer
 *   (the frozen input gradient, A and B) sees n g,
 *
 * The norm is clamped at DORA_NORM_MIN (an all-zero row gives n = 0, not NaN).
 * It depends on A and B alone and costs (r + 1) n_in n_out multiply-adds, more
 * than the layer's own forward where the spatial size is small: the
 * params_changed hook computes it into ctx->dora_norm (the plan's DORA_NORM
 * buffer, live across samples) whenever the parameters change, and forward and
 * backward read it. Memory: the forward keeps only what LoRA keeps (the input
 * and u); backward recomputes W0 x from the int8 weights, in the scratch where
 * it then writes n g. The layer's bias and weights stay frozen (the planner
 * puts no other method on a DoRA layer). */
#include <math.h>
#include <stddef.h>

#include "../kernels/peft_kernel_check.h"
#include "peft/peft_kernels.h"
#include "peft_lora_branch.h"
#include "peft_method.h"

#define DORA_NORM_MIN 1e-12f

/* Input features per pass of direction_norm: B A's row is built a run at a
 * time on the stack. */
#define DORA_NORM_CHUNK 64

/* ||W0 + s B A|| of output channel c (W0 = int8 weight row times its scale).
 * A run of B A's row is summed over the rank k in order, each k a loop over
 * contiguous values of A (hosts vectorize it); the squares add in order, as
 * before (partial sums would change every trajectory's rounding). */
static float direction_norm(const peft_layer_ctx *ctx, int32_t c)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_in = L->in_features;
	const int32_t r = L->rec.lora_rank;
	const float s = peft_lora_branch_scale(L);
	const float w_scale = peft_weight_scale(&ctx->w8, c);
	const int8_t *w = ctx->w8.data + c * n_in;
	const float *a = ctx->param[PEFT_PARAM_LORA_A];
	const float *b = ctx->param[PEFT_PARAM_LORA_B] + c * r;
	float sum = 0.0f;
	float ba[DORA_NORM_CHUNK];

	for (int32_t i0 = 0; i0 < n_in; i0 += DORA_NORM_CHUNK) {
		const int32_t m = n_in - i0 < DORA_NORM_CHUNK ? n_in - i0 : DORA_NORM_CHUNK;

		for (int32_t i = 0; i < m; i++) {
			ba[i] = 0.0f;
		}
		for (int32_t k = 0; k < r; k++) {
			const float bk = b[k];
			const float *ak = a + k * n_in + i0;

			for (int32_t i = 0; i < m; i++) {
				ba[i] += bk * ak[i];
			}
		}
		for (int32_t i = 0; i < m; i++) {
			ba[i] = (float)w[i0 + i] * w_scale + s * ba[i]; /* the row of W0 + s B A */
		}
		for (int32_t i = 0; i < m; i++) {
			sum += ba[i] * ba[i];
		}
	}
	return fmaxf(sqrtf(sum), DORA_NORM_MIN);
}

static peft_status dora_init(peft_layer_ctx *ctx)
{
	peft_lora_branch_init(ctx); /* B = 0: the norm is ||W0||_c */
	for (int32_t c = 0; c < ctx->info->out_features; c++) {
		ctx->param[PEFT_PARAM_DORA_M][c] = direction_norm(ctx, c);
	}
	return PEFT_OK;
}

static peft_status dora_params_changed(peft_layer_ctx *ctx)
{
	for (int32_t c = 0; c < ctx->info->out_features; c++) {
		ctx->dora_norm[c] = direction_norm(ctx, c);
	}
	return PEFT_OK;
}

/* ctx->out holds lin = W0 x + bias: out = n (lin - bias + B u) + bias. */
static peft_status dora_fwd(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_out = L->out_features;
	const peft_status st = peft_lora_branch_fwd(ctx);

	if (st != PEFT_OK) {
		return st;
	}
	for (int32_t c = 0; c < n_out; c++) {
		const float n = ctx->param[PEFT_PARAM_DORA_M][c] / ctx->dora_norm[c];
		const float bias = ctx->bias != NULL ? ctx->bias[c] : 0.0f;

		for (int32_t row = 0; row < L->rows; row++) {
			float *o = ctx->out + row * n_out + c;

			*o = n * (*o - bias + ctx->tmp_a[row * n_out + c]) + bias;
		}
	}
	return PEFT_OK;
}

/* dm from dir = W0 x + B u (recomputed in tmp_a), then tmp_a = n g: the
 * gradient the frozen path and the branch see. */
static peft_status dora_bwd_scale(peft_layer_ctx *ctx)
{
	const peft_layer_info *L = ctx->info;
	const int32_t n_out = L->out_features;
	const int32_t r = L->rec.lora_rank;
	const peft_fc_params fp = {L->rows, L->in_features, n_out};
	float *t = ctx->tmp_a;
	const peft_status st = peft_fc_fwd_s8(&fp, ctx->x, &ctx->w8, NULL, t);

	if (st != PEFT_OK) {
		return st;
	}
	for (int32_t c = 0; c < n_out; c++) {
		const float norm = ctx->dora_norm[c];
		const float n = ctx->param[PEFT_PARAM_DORA_M][c] / norm;
		const float *b = ctx->param[PEFT_PARAM_LORA_B] + c * r;
		float acc = 0.0f;

		for (int32_t row = 0; row < L->rows; row++) {
			const float *u = ctx->u + row * r;
			const int32_t i = row * n_out + c;
			float bu = 0.0f;

			for (int32_t k = 0; k < r; k++) {
				bu += b[k] * u[k];
			}
			acc += ctx->g[i] * (t[i] + bu);
			t[i] = n * ctx->g[i];
		}
		ctx->grad[PEFT_PARAM_DORA_M][c] += acc / norm;
	}
	ctx->g = t;
	ctx->g_out = t;
	return PEFT_OK;
}

static peft_status dora_bwd_branch(peft_layer_ctx *ctx)
{
	return peft_lora_branch_bwd(ctx, ctx->g_out);
}

const peft_method peft_method_dora = {
	.flag = PEFT_METHOD_DORA,
	.name = "dora",
	.trains = (1u << PEFT_PARAM_DORA_M) | (1u << PEFT_PARAM_LORA_A) | (1u << PEFT_PARAM_LORA_B),
	.init = dora_init,
	.fwd_adapter = dora_fwd,
	.bwd_affine = dora_bwd_scale,
	.bwd_adapter = dora_bwd_branch,
	.params_changed = dora_params_changed,
};
