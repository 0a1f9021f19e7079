/* The trainer: forward, loss, backward and optimizer step over one arena.
 *
 * Every buffer's place comes from the (checked) plan records. Per layer the
 * forward is: method hooks that map the input to the linear kernel's (IA3's
 * input scaling) -> linear kernel (int8 weights read in place from the model, or the
 * float32 copy when the weights train) -> method hooks that map it to the
 * output (scale+shift) -> method hooks that add a side branch (LoRA) -> fused
 * activation. Backward runs the same steps in reverse, and only the
 * gradients the plan asks for (skip-input-grad / skip-weight-grad as data).
 * Backward reads only what the forward kept (plan buffer table): a 1-bit mask
 * for a fused ReLU/ReLU6, the input of a layer whose weights or LoRA factors
 * train (int8 with the tensor's quantization, or float), scale+shift's
 * pre-scale output, LoRA's u. Frozen biases are read from the model. With the
 * plan's QUANTIZED_FORWARD flag every layer output but the logits is
 * fake-quantized to its int8 quantization after the activation (training and
 * inference), as the merged int8 model computes it; its gradient passes
 * straight through. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../kernels/activation/peft_activation_mask.h"
#include "../kernels/peft_kernel_check.h"
#include "../kernels/quantize/peft_quantize.h"
#include "../methods/peft_method.h"
#include "../ops/peft_ops.h"
#include "../plan/peft_plan_internal.h"
#include "peft/peft_kernels.h"
#include "peft/peft_optim.h"
#include "peft/peft_trainer.h"
#include "peft_trainer_internal.h"
#include "../common/peft_try.h"

float *peft_arena_f32(const peft_trainer *t, uint32_t offset)
{
	return offset == PEFT_NONE ? NULL : (float *)(void *)(t->arena + offset);
}

static bool trainer_ok(const peft_trainer *t)
{
	return t != NULL && t->plan != NULL && t->arena != NULL;
}

/* ---- parameters ---- */

static int arena_of(const peft_trainer *t)
{
	return t->mode == PEFT_MODE_TRAIN ? PEFT_ARENA_TRAIN : PEFT_ARENA_INFER;
}

/* A work buffer of this trainer's arena, NULL when the plan has none. */
static float *work_f32(const peft_trainer *t, peft_buffer_kind kind, int32_t owner)
{
	return peft_arena_f32(t, peft_plan_buffer_offset(t->plan, arena_of(t), kind, owner, 0));
}

static uint8_t *work_bytes(const peft_trainer *t, peft_buffer_kind kind, int32_t owner)
{
	const uint32_t off = peft_plan_buffer_offset(t->plan, arena_of(t), kind, owner, 0);

	return off == PEFT_NONE ? NULL : t->arena + off;
}

static peft_weights_s8 frozen_weights(const peft_plan *plan, const peft_layer_info *L)
{
	return (peft_weights_s8){
		(const int8_t *)(plan->model + L->rec.weights.offset),
		(const float *)(const void *)(plan->model + L->rec.weights.scale_offset),
		(int32_t)L->rec.weights.scale_count};
}

static void bind_params(const peft_trainer *t, const peft_layer_info *L, peft_layer_ctx *ctx)
{
	const bool train = t->mode == PEFT_MODE_TRAIN;
	const bool per_layer = t->plan->update == PEFT_UPDATE_LAYER;

	memset(ctx, 0, sizeof(*ctx));
	ctx->info = L;
	ctx->seed = t->plan->seed;
	if (L->rec.weights.count > 0) {
		ctx->w8 = frozen_weights(t->plan, L);
	}
	for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
		ctx->param[p] = peft_arena_f32(t, L->rec.param[p]);
		if (train && per_layer) {
			ctx->grad[p] = peft_arena_f32(
				t, peft_plan_buffer_offset(t->plan, PEFT_ARENA_TRAIN,
							   PEFT_BUF_PARAM_GRAD, L->index, p));
		} else if (train) {
			ctx->grad[p] = peft_arena_f32(t, L->rec.grad[p]);
		}
	}
	ctx->dora_norm =
		L->trainable[PEFT_PARAM_DORA_M] ? work_f32(t, PEFT_BUF_DORA_NORM, L->index) : NULL;
}

/* What layer L's methods derive from its parameters alone, recomputed after
 * they changed (peft_method.params_changed). */
static peft_status layer_params_changed(const peft_trainer *t, const peft_layer_info *L)
{
	peft_layer_ctx ctx;

	bind_params(t, L, &ctx);
	return peft_methods_run(L->rec.methods, PEFT_HOOK_PARAMS_CHANGED, &ctx);
}

peft_status peft_trainer_params_changed(peft_trainer *t)
{
	if (!trainer_ok(t)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t k = 0; k < t->plan->num_layers; k++) {
		peft_layer_info L;

		PEFT_TRY(peft_plan_layer_info(t->plan, k, &L));
		PEFT_TRY(layer_params_changed(t, &L));
	}
	return PEFT_OK;
}

static float model_f32(const peft_plan *plan, uint32_t offset, uint32_t index)
{
	float v;

	memcpy(&v, plan->model + offset + 4u * index, sizeof(v));
	return v;
}

static void dequantize_bias(const peft_plan *plan, const peft_layer_rec *r, float *out)
{
	for (uint32_t c = 0; c < r->bias.count; c++) {
		int32_t q;

		memcpy(&q, plan->model + r->bias.offset + 4u * c, sizeof(q));
		const uint32_t s = r->bias.scale_count == 1u ? 0u : c;

		out[c] = (float)q * model_f32(plan, r->bias.scale_offset, s);
	}
}

/* Dequantised weights and biases of the arrays that train into the parameters. */
static void load_weights(const peft_trainer *t, const peft_layer_info *L, peft_layer_ctx *ctx)
{
	const peft_plan *plan = t->plan;
	const peft_layer_rec *r = &L->rec;

	if (ctx->param[PEFT_PARAM_WEIGHT] != NULL) {
		const int8_t *q = (const int8_t *)(plan->model + r->weights.offset);
		const uint32_t n = r->weights.count;
		const uint32_t per_channel = n / (uint32_t)L->out_features;
		const bool channel_innermost = peft_op_find(r->op)->channel_innermost;

		for (uint32_t i = 0; i < n; i++) {
			const uint32_t ch =
				channel_innermost ? i % (uint32_t)L->out_features : i / per_channel;
			const uint32_t s = r->weights.scale_count == 1u ? 0u : ch;

			ctx->param[PEFT_PARAM_WEIGHT][i] =
				(float)q[i] * model_f32(plan, r->weights.scale_offset, s);
		}
	}
	if (ctx->param[PEFT_PARAM_BIAS] != NULL) {
		dequantize_bias(plan, r, ctx->param[PEFT_PARAM_BIAS]);
	}
}

peft_status peft_trainer_init(peft_trainer *t, const peft_plan *plan, peft_mode mode, void *arena,
			      size_t arena_size)
{
	size_t need;

	if (t == NULL || plan == NULL || plan->blob == NULL || arena == NULL ||
	    (uintptr_t)arena % PEFT_ALIGN != 0) {
		return PEFT_ERR_ARG;
	}
	PEFT_TRY(peft_plan_arena_size(plan, mode, &need));
	if (arena_size < need) {
		return PEFT_ERR_BUFFER_TOO_SMALL;
	}
	t->plan = plan;
	t->mode = mode;
	t->arena = arena;
	t->arena_size = arena_size;
	t->step = 0;
	t->samples = 0;
	peft_trainer_clear_pending(t);
	t->max_loss = PEFT_DEFAULT_MAX_LOSS;
	t->max_param = PEFT_DEFAULT_MAX_PARAM;
	memset(arena, PEFT_ARENA_CANARY, arena_size);
	if (mode == PEFT_MODE_TRAIN) {
		memset(t->arena + plan->param_grads.offset, 0,
		       (size_t)plan->param_grads.size + plan->optimizer_state.size);
	}
	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_info L;
		peft_layer_ctx ctx;

		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		bind_params(t, &L, &ctx);
		load_weights(t, &L, &ctx);
		PEFT_TRY(peft_methods_run(L.rec.methods, PEFT_HOOK_INIT, &ctx));
	}
	return peft_trainer_params_changed(t);
}

peft_status peft_trainer_set_limits(peft_trainer *t, float max_loss, float max_param)
{
	if (!trainer_ok(t) || !(max_loss > 0.0f) || !(max_param > 0.0f)) {
		return PEFT_ERR_ARG;
	}
	t->max_loss = max_loss;
	t->max_param = max_param;
	return PEFT_OK;
}

/* ---- tensors ---- */

static peft_tensor_rec tensor(const peft_trainer *t, int32_t i)
{
	peft_tensor_rec r;

	peft_plan_read_tensor(t->plan, i, &r);
	return r;
}

static int32_t size_of(const peft_tensor_rec *r)
{
	return peft_tensor_elements(r);
}

/* Tensor i's float values (forward value buffer). */
static float *tensor_value(const peft_trainer *t, int32_t i)
{
	return work_f32(t, PEFT_BUF_VALUE, i);
}

/* Keep tensor i of the call's `samples` for backward when the plan keeps it as
 * int8 (with act_cache f32 its forward values simply stay live). */
static peft_status tensor_keep(const peft_trainer *t, int32_t i, int32_t samples,
			       const float *values)
{
	int8_t *dst = (int8_t *)(void *)work_bytes(t, PEFT_BUF_KEEP, i);
	const peft_tensor_rec r = tensor(t, i);

	if (t->mode != PEFT_MODE_TRAIN || dst == NULL) {
		return PEFT_OK;
	}
	return peft_quantize_s8(samples * size_of(&r), values, r.scale, r.zero_point, dst);
}

/* Backward: the kept values of tensor i (dequantised into `stage` when int8). */
static peft_status tensor_kept(const peft_trainer *t, int32_t i, int32_t samples, float *stage,
			       const float **out)
{
	const int8_t *kept = (const int8_t *)(const void *)work_bytes(t, PEFT_BUF_KEEP, i);
	const peft_tensor_rec r = tensor(t, i);

	if (kept == NULL) {
		*out = tensor_value(t, i);
		return PEFT_OK;
	}
	PEFT_TRY(peft_dequantize_s8(samples * size_of(&r), kept, r.scale, r.zero_point, stage));
	*out = stage;
	return PEFT_OK;
}

/* The input tensor's values of `samples` inputs, one after the other. */
static peft_status set_input(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
			     int32_t samples)
{
	const int32_t input = t->plan->input_tensor;
	const peft_tensor_rec r = tensor(t, input);
	const int32_t n = samples * size_of(&r);
	float *dst = tensor_value(t, input);
	int8_t *kept = t->mode == PEFT_MODE_TRAIN
			       ? (int8_t *)(void *)work_bytes(t, PEFT_BUF_KEEP, input)
			       : NULL;

	if (in_s8 != NULL) {
		if (kept != NULL) {
			memcpy(kept, in_s8, (size_t)n);
		}
		return peft_dequantize_s8(n, in_s8, r.scale, r.zero_point, dst);
	}
	for (int32_t i = 0; i < n; i++) {
		if (!isfinite(in_f32[i])) {
			return PEFT_ERR_NUMERIC;
		}
	}
	memcpy(dst, in_f32, (size_t)n * sizeof(float));
	return tensor_keep(t, input, samples, dst);
}

/* ---- forward ---- */

/* The right shift rs of TFLite's requantization multiplier M = s_in s_w / s_out
 * = m 2^-rs, m in [0.5, 1) (QuantizeMultiplier; at most 31 fractional bits). */
static int requant_shift(float s_in, float s_w, float s_out)
{
	int e = 0;

	(void)frexpf(s_in * s_w / s_out, &e);
	return e >= 0 ? 0 : e < -31 ? 31 : -e;
}

/* PEFT_PLAN_FLAG_QUANTIZED_FORWARD on a layer whose training only multiplies its
 * output channels (a method of PEFT_METHODS_SCALING_CHANNELS, none of
 * PEFT_METHODS_CHANGING_WEIGHTS, one weight scale per output channel): merge
 * folds the factor into each channel's weight scale and keeps the int8 codes
 * (reference.scales_channels_only), so the runtime rounds as that merged layer
 * computes. Returns the factor per channel (gamma or IA3's l), NULL for any
 * other layer or without the flag. */
static const float *channel_factor(const peft_trainer *t, const peft_layer_info *L,
				   const peft_layer_ctx *ctx)
{
	const peft_layer_rec *r = &L->rec;

	if ((t->plan->flags & PEFT_PLAN_FLAG_QUANTIZED_FORWARD) == 0 ||
	    (r->methods & PEFT_METHODS_SCALING_CHANNELS) == 0 ||
	    (r->methods & PEFT_METHODS_CHANGING_WEIGHTS) != 0 || r->weights.count == 0 ||
	    L->out_features < 2 || r->weights.scale_count != (uint32_t)L->out_features) {
		return NULL;
	}
	return (r->methods & PEFT_METHOD_SCALE_SHIFT) != 0 ? ctx->param[PEFT_PARAM_GAMMA]
							   : ctx->param[PEFT_PARAM_IA3_L];
}

/* Channel c's weight scale in the merged model: that of the rounded trained
 * weights (scales, round_weights), |f| s_w of a channel-scaled layer (factor; s_w
 * where f is 0, whose codes merge zeroes), else the model's s_w. */
static float merged_weight_scale(const peft_weights_s8 *w8, const float *factor,
				 const float *scales, int32_t c)
{
	if (scales != NULL) {
		return scales[c];
	}
	const float s = peft_weight_scale(w8, c);

	if (factor == NULL) {
		return s;
	}
	const float f = fabsf(factor[c]);

	return f > 0.0f ? f * s : s;
}

/* PEFT_PLAN_FLAG_QUANTIZED_FORWARD on a layer that rounds its trained weights
 * (rounds_weights): the float weights rounded to int8 per output channel as
 * merge stores them, into out[0 .. count) and the channels' scales after them
 * (out[count + c], every channel's even for a per-tensor layer): a channel
 * keeps the model's scale s_w where max |w| <= 127 s_w, else gets max |w| / 127;
 * codes round as peft_s8_code rounds, clamped to +-127. float32 throughout, as
 * reference.round_weights computes it. The gradient passes through unchanged
 * (straight-through). */
/* The merged channel's scale: the model's s_w while it still covers the channel's
 * largest |w| (peak), else peak / 127. */
static float rounded_scale(float peak, float s_w)
{
	return peak <= 127.0f * s_w ? s_w : peak / 127.0f;
}

/* w rounded to its int8 code at `scale` (as peft_s8_code rounds, clamped to
 * +-127; a comparison, not fminf / fmaxf: no libm call per weight, NaN kept),
 * in float. */
static float rounded_weight(float w, float scale)
{
	const float v = roundf(w / scale);
	const float q = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;

	return q * scale;
}

static void round_weights(const peft_layer_info *L, const peft_layer_ctx *ctx, float *out)
{
	const peft_layer_rec *r = &L->rec;
	const float *w = ctx->param[PEFT_PARAM_WEIGHT];
	const uint32_t n = r->weights.count;
	const uint32_t channels = (uint32_t)L->out_features;
	const uint32_t per_channel = n / channels;
	const bool one_scale = r->weights.scale_count == 1u;
	const bool channel_innermost = peft_op_find(r->op)->channel_innermost;
	float *scales = out + n;

	for (uint32_t c = 0; c < channels; c++) {
		scales[c] = 0.0f;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t ch = one_scale           ? 0u
				    : channel_innermost ? i % channels
							: i / per_channel;

		const float a = fabsf(w[i]);

		if (a > scales[ch]) {
			scales[ch] = a;
		}
	}
	for (uint32_t c = 0; c < (one_scale ? 1u : channels); c++) {
		const float s_w = peft_weight_scale(&ctx->w8, (int32_t)c);

		scales[c] = rounded_scale(scales[c], s_w);
	}
	for (uint32_t c = 1; one_scale && c < channels; c++) {
		scales[c] = scales[0];
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t ch = channel_innermost ? i % channels : i / per_channel;
		out[i] = rounded_weight(w[i], scales[ch]);
	}
}

/* PEFT_PLAN_FLAG_QUANTIZED_FORWARD on a LoRA layer (rounds_lora): row o of its
 * weights as merge stores them, W0[o] + (alpha / r) (B A)[o] (float32, B A summed
 * over the rank in order, W0 as the model's codes times s_w), rounded by
 * round_weights' rule into row[0 .. in); returns the row's scale. */
static float lora_merged_row(const peft_layer_info *L, const peft_layer_ctx *ctx, int32_t o,
			     float *row)
{
	const int32_t in = L->in_features;
	const int32_t rank = L->rec.lora_rank;
	const float s = L->rec.lora_alpha / (float)rank;
	const float s_w = peft_weight_scale(&ctx->w8, o);
	const int8_t *q = ctx->w8.data + (size_t)o * (size_t)in;
	const float *a = ctx->param[PEFT_PARAM_LORA_A];
	const float *b = ctx->param[PEFT_PARAM_LORA_B] + (size_t)o * (size_t)rank;
	float peak = 0.0f;

	for (int32_t i = 0; i < in; i++) {
		float ba = 0.0f;

		for (int32_t j = 0; j < rank; j++) {
			ba += b[j] * a[(size_t)j * (size_t)in + (size_t)i];
		}
		row[i] = (float)q[i] * s_w + s * ba;
		if (fabsf(row[i]) > peak) {
			peak = fabsf(row[i]);
		}
	}
	const float scale = rounded_scale(peak, s_w);

	for (int32_t i = 0; i < in; i++) {
		row[i] = rounded_weight(row[i], scale);
	}
	return scale;
}

/* A rounds_lora layer's forward, lin = W x + bias with W its merged rows
 * (lora_merged_row, one at a time in stage[0 .. in)), and the rows' scales into
 * stage[in + o]; LoRA's forward hook then keeps u and adds nothing. */
static void lora_rounded_forward(const peft_layer_info *L, const peft_layer_ctx *ctx,
				 const float *x, const float *bias, float *lin, float *stage)
{
	const int32_t in = L->in_features;
	const int32_t n_out = L->out_features;

	for (int32_t o = 0; o < n_out; o++) {
		stage[in + o] = lora_merged_row(L, ctx, o, stage);
		for (int32_t p = 0; p < L->rows; p++) {
			const float *xp = x + (size_t)p * (size_t)in;
			float acc = 0.0f;

			for (int32_t i = 0; i < in; i++) {
				acc += stage[i] * xp[i];
			}
			lin[(size_t)p * (size_t)n_out + (size_t)o] =
				acc + (bias != NULL ? bias[o] : 0.0f);
		}
	}
}

/* Its input gradient, grad_in (+)= W^T g over the same rounded rows (straight-
 * through: LoRA's hook then computes A's and B's gradients and adds nothing). */
static void lora_rounded_input_grad(const peft_layer_info *L, const peft_layer_ctx *ctx,
				    const float *g, float *grad_in, bool accumulate, float *stage)
{
	const int32_t in = L->in_features;
	const int32_t n_out = L->out_features;

	if (!accumulate) {
		memset(grad_in, 0, (size_t)L->rows * (size_t)in * sizeof(float));
	}
	for (int32_t o = 0; o < n_out; o++) {
		stage[in + o] = lora_merged_row(L, ctx, o, stage);
		for (int32_t p = 0; p < L->rows; p++) {
			const float gpo = g[(size_t)p * (size_t)n_out + (size_t)o];
			float *dx = grad_in + (size_t)p * (size_t)in;

			for (int32_t i = 0; i < in; i++) {
				dx[i] += gpo * stage[i];
			}
		}
	}
}

/* A channel-scaled layer's whole bias, f b + beta (f b for IA3), as the merged
 * model stores it: int32 steps of s_in |f| s_w, rounded as peft_quantize_s8
 * rounds; out (after the affine hooks) gets the difference. The gradient is the
 * float one's (straight-through). */
static void round_channel_scaled_bias(const peft_trainer *t, const peft_layer_info *L,
				      const peft_layer_ctx *ctx, const float *factor, float *out)
{
	const float s_in = tensor(t, L->rec.input[0]).scale;
	const float *beta = (L->rec.methods & PEFT_METHOD_SCALE_SHIFT) != 0
				    ? ctx->param[PEFT_PARAM_BETA]
				    : NULL;
	const int32_t channels = L->out_features;

	for (int32_t c = 0; c < channels; c++) {
		float whole = (ctx->bias != NULL ? ctx->bias[c] : 0.0f) * factor[c];

		if (beta != NULL) {
			whole = whole + beta[c];
		}
		const float step = s_in * merged_weight_scale(&ctx->w8, factor, NULL, c);
		const float delta = roundf(whole / step) * step - whole;

		for (int32_t j = c; j < L->out_size; j += channels) {
			out[j] += delta;
		}
	}
}

/* PEFT_PLAN_FLAG_QUANTIZED_FORWARD: layer L's output values, in place, rounded to
 * the output tensor's int8 quantization and back, with peft_quantize_s8's
 * arithmetic (peft_s8_code: roundf, halves away from zero, clamped) then
 * peft_dequantize_s8's, so a later int8 keep of them is exact. A CONV_2D,
 * DEPTHWISE_CONV_2D or FULLY_CONNECTED output is rounded as TFLite's int8 kernel
 * rounds its accumulator (MultiplyByQuantizedMultiplier: first to a multiple of
 * 2^-rs of a step, rs from the channel's multiplier s_in s_w / s_out, s_w the
 * merged one of a channel-scaled layer (factor, else NULL), then to a step).
 * Backward passes the gradient through unchanged (straight-through). */
static peft_status fake_quantize(const peft_trainer *t, const peft_layer_info *L,
				 const float *factor, const float *scales, float *values)
{
	const peft_layer_rec *r = &L->rec;
	const peft_tensor_rec o = tensor(t, r->output);
	const int32_t n = L->out_size; /* every sample of the call */
	const bool weighted = r->weights.count > 0;
	const int32_t channels = weighted ? L->out_features : 1;

	for (int32_t j = 0; j < n; j++) {
		if (isnan(values[j])) {
			return PEFT_ERR_NUMERIC;
		}
	}
	if (channels < 1 || n % channels != 0) {
		return PEFT_ERR_ARG;
	}
	const float s_in = tensor(t, r->input[0]).scale;
	const peft_weights_s8 w8 =
		weighted ? frozen_weights(t->plan, L) : (peft_weights_s8){NULL, NULL, 0};

	for (int32_t c = 0; c < channels; c++) {
		const int rs =
			weighted ? requant_shift(s_in, merged_weight_scale(&w8, factor, scales, c),
						 o.scale)
				 : 0;

		for (int32_t j = c; j < n; j += channels) {
			float v = values[j] / o.scale;

			if (rs > 0) {
				v = ldexpf(roundf(ldexpf(v, rs)), -rs);
			}
			const float q = peft_s8_code(v, o.zero_point);

			values[j] = o.scale * (float)((int32_t)q - o.zero_point);
		}
	}
	return PEFT_OK;
}

/* PEFT_PLAN_FLAG_QUANTIZED_FORWARD: a trained bias as the int8 model stores it,
 * int32 steps of s_in s_w per output channel (s_w the rounded weights' where they
 * train: scales, else NULL; rounded as peft_quantize_s8 rounds): lin gets the
 * difference (DoRA, which rescales lin - bias, excepted). The gradient is the
 * float bias's (straight-through). */
static void round_trained_bias(const peft_trainer *t, const peft_layer_info *L, const float *scales,
			       const float *bias, float *lin)
{
	const peft_weights_s8 w8 = frozen_weights(t->plan, L);
	const float s_in = tensor(t, L->rec.input[0]).scale;
	const int32_t channels = L->out_features;

	for (int32_t c = 0; c < channels; c++) {
		const float step = s_in * merged_weight_scale(&w8, NULL, scales, c);
		const float delta = roundf(bias[c] / step) * step - bias[c];

		for (int32_t j = c; j < L->out_size; j += channels) {
			lin[j] += delta;
		}
	}
}

/* The layer over the call's samples: `sample` itself for one (no copy: the
 * record is large), else its stacked copy in *all. */
static const peft_layer_info *stacked(const peft_layer_info *sample, int32_t samples,
				      peft_layer_info *all)
{
	if (samples == 1) {
		return sample;
	}
	*all = *sample;
	peft_layer_info_stack(all, samples);
	return all;
}

/* The op's forward over the call's samples: in one call when the samples stack
 * (one), else one call per sample on its part of each buffer. */
static peft_status op_forward(const peft_layer_info *sample, const peft_layer_info *all,
			      int32_t samples, const peft_op_forward_args *a)
{
	const peft_op *op = peft_op_find(sample->rec.op);

	if (samples == 1 || peft_op_stacks_samples(sample)) {
		peft_op_forward_args one = *a;

		one.layer = all;
		return op->forward(&one);
	}
	for (int32_t s = 0; s < samples; s++) {
		peft_op_forward_args one = *a;

		one.layer = sample;
		for (int j = 0; j < 2; j++) {
			one.x[j] = a->x[j] == NULL ? NULL : a->x[j] + s * sample->in_size[j];
		}
		one.out = a->out + s * sample->out_size;
		PEFT_TRY(op->forward(&one));
	}
	return PEFT_OK;
}

/* Layer L's forward over the call's `samples` (per-sample buffers hold them one
 * after the other): everything but a non-stacking op runs on them at once. */
static peft_status layer_forward(const peft_trainer *t, const peft_layer_info *sample,
				 int32_t samples, const float **y_out)
{
	peft_layer_info all;
	const peft_layer_info *L = stacked(sample, samples, &all);
	const peft_layer_rec *r = &L->rec;
	const bool train = t->mode == PEFT_MODE_TRAIN;
	const bool s8 = t->plan->act_cache == PEFT_CACHE_S8;
	const int32_t k = L->index;
	const float *x1 = NULL;
	float *y = tensor_value(t, r->output);
	peft_layer_ctx ctx;

	bind_params(t, L, &ctx);
	ctx.x = tensor_value(t, r->input[0]);
	if (r->num_inputs == 2u) {
		x1 = tensor_value(t, r->input[1]);
	}
	ctx.out = y;
	ctx.lin = y;
	if (L->scales_lin) {
		ctx.lin = train && !s8 ? work_f32(t, PEFT_BUF_KEEP_LIN, k)
				       : work_f32(t, PEFT_BUF_FWD_LIN, k);
	}
	ctx.u = train ? work_f32(t, PEFT_BUF_KEEP_U, k) : work_f32(t, PEFT_BUF_FWD_U, k);
	ctx.tmp_a = work_f32(t, PEFT_BUF_FWD_LORA_OUT, k);
	float *bias = ctx.param[PEFT_PARAM_BIAS];

	if (bias == NULL && r->bias.count > 0) {
		bias = work_f32(t, PEFT_BUF_FWD_BIAS, k);
		dequantize_bias(t->plan, r, bias);
	}
	ctx.bias = bias;
	ctx.x_scaled = work_f32(t, PEFT_BUF_FWD_XS, k);
	PEFT_TRY(peft_methods_run(L->rec.methods, PEFT_HOOK_FWD_INPUT, &ctx));
	float *rounded =
		L->rounds_weights || L->rounds_lora ? work_f32(t, PEFT_BUF_FWD_QW, k) : NULL;
	const float *scales = rounded == NULL ? NULL
					      : rounded + (L->rounds_lora ? (uint32_t)L->in_features
									  : r->weights.count);

	if (L->rounds_lora) {
		lora_rounded_forward(L, &ctx, ctx.x, bias, ctx.lin, rounded);
	} else {
		if (rounded != NULL) {
			round_weights(L, &ctx, rounded);
		}
		const peft_op_forward_args op_args = {
			L,
			{ctx.x, x1},
			rounded != NULL ? rounded : ctx.param[PEFT_PARAM_WEIGHT],
			&ctx.w8,
			bias,
			ctx.lin};

		PEFT_TRY(op_forward(sample, L, samples, &op_args));
	}
	const float *factor = channel_factor(t, L, &ctx);

	if ((t->plan->flags & PEFT_PLAN_FLAG_QUANTIZED_FORWARD) != 0 &&
	    ctx.param[PEFT_PARAM_BIAS] != NULL && r->weights.count > 0 &&
	    (r->methods & PEFT_METHOD_DORA) == 0 && factor == NULL) {
		round_trained_bias(t, L, scales, ctx.param[PEFT_PARAM_BIAS], ctx.lin);
	}
	if (train && s8 && L->scales_lin) {
		const peft_tensor_rec o = tensor(t, r->output);

		PEFT_TRY(peft_quantize_s8(L->out_size, ctx.lin, o.scale, o.zero_point,
					  (int8_t *)(void *)work_bytes(t, PEFT_BUF_KEEP_LIN, k)));
	}
	PEFT_TRY(peft_methods_run(L->rec.methods, PEFT_HOOK_FWD_AFFINE, &ctx));
	if (factor != NULL) {
		round_channel_scaled_bias(t, L, &ctx, factor, y);
	}
	PEFT_TRY(peft_methods_run(L->rec.methods, PEFT_HOOK_FWD_ADAPTER, &ctx));
	if (r->activation != PEFT_ACT_NONE) {
		if (train && L->keeps_mask) {
			PEFT_TRY(peft_activation_fwd_mask_f32((peft_activation)r->activation,
							      L->out_size, y,
							      work_bytes(t, PEFT_BUF_MASK, k)));
		} else {
			PEFT_TRY(peft_activation_fwd_f32((peft_activation)r->activation,
							 L->out_size, y));
		}
	}
	if ((t->plan->flags & PEFT_PLAN_FLAG_QUANTIZED_FORWARD) != 0 &&
	    r->output != t->plan->output_tensor) {
		PEFT_TRY(fake_quantize(t, L, factor, scales, y));
	}
	PEFT_TRY(tensor_keep(t, r->output, samples, y));
	*y_out = y;
	return PEFT_OK;
}

/* Runs every layer on the input set of `samples`; *logits points at their float
 * logits afterwards (num_classes per sample). */
static peft_status forward_layers(peft_trainer *t, int32_t samples, const float **logits)
{
	for (int32_t k = 0; k < t->plan->num_layers; k++) {
		peft_layer_info L;

		PEFT_TRY(peft_plan_layer_info(t->plan, k, &L));
		PEFT_TRY(layer_forward(t, &L, samples, logits));
	}
	return PEFT_OK;
}

static peft_status forward(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
			   int32_t samples, const float **logits)
{
	PEFT_TRY(set_input(t, in_s8, in_f32, samples));
	return forward_layers(t, samples, logits);
}

/* ---- backward ---- */

/* The update counter after one more update. It saturates: Adam's bias
 * corrections are 1 to float precision long before 2^32 - 1 updates, and a
 * wrapped count (0) would be an invalid Adam step. */
static uint32_t next_step(uint32_t step)
{
	return step == UINT32_MAX ? step : step + 1u;
}

/* True when layer k is the first to contribute to the gradient of its input
 * j (backward runs in reverse: the tensor's last reader, first position). */
static bool first_contribution(const peft_plan *plan, const peft_layer_rec *r, int32_t k,
			       uint32_t j)
{
	const int32_t tensor_index = r->input[j];

	if (j == 1u && r->input[0] == tensor_index) {
		return false;
	}
	for (int32_t later = k + 1; later < plan->num_layers; later++) {
		peft_layer_rec lr;

		peft_plan_read_layer(plan, later, &lr);
		if (lr.input[0] == tensor_index ||
		    (lr.num_inputs == 2u && lr.input[1] == tensor_index)) {
			return false;
		}
	}
	return true;
}

/* One optimizer update of array p of a layer (Adam's t = step): a dry run that
 * only checks the new values against the trainer's bounds (apply false), or the
 * update itself. */
static peft_status optimizer_update(const peft_trainer *t, const peft_layer_rec *r, int p,
				    int32_t count, float *param, const float *grad, float scale,
				    uint32_t step, bool apply)
{
	const peft_optimizer_config *o = &t->plan->optimizer;
	const float lr = peft_optimizer_lr(o, step);
	float *m = peft_arena_f32(t, r->opt_m[p]);

	if (o->kind == PEFT_OPTIMIZER_ADAM) {
		const peft_adam_params adam = {lr,     o->beta1,        o->beta2,
					       o->eps, o->weight_decay, step};
		float *v = peft_arena_f32(t, r->opt_v[p]);

		return apply ? peft_adam_step_f32(&adam, count, param, grad, m, v, scale)
			     : peft_adam_check_f32(&adam, count, param, grad, m, v, scale,
						   t->max_param);
	}
	const peft_sgd_params sgd = {lr, o->momentum, o->weight_decay};

	return apply ? peft_sgd_step_f32(&sgd, count, param, grad, m, scale)
		     : peft_sgd_check_f32(&sgd, count, param, grad, m, scale, t->max_param);
}

/* Per-layer updates: the layer's arrays are checked first, then updated, so a
 * layer is updated whole or not at all; what its methods derive from them
 * follows the update. */
static peft_status update_layer(const peft_trainer *t, const peft_layer_info *L,
				peft_layer_ctx *ctx)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (L->trainable[p]) {
				PEFT_TRY(optimizer_update(t, &L->rec, p, L->counts[p],
							  ctx->param[p], ctx->grad[p], 1.0f,
							  t->step, pass == 1));
			}
		}
	}
	return peft_methods_run(L->rec.methods, PEFT_HOOK_PARAMS_CHANGED, ctx);
}

/* The input gradient through frozen int8 weights on the int8 path (the plan's
 * flag puts a pointwise conv or FC layer on it; peft_plan_load() refuses the
 * flag in a build without CONFIG_PEFT_INT8_BACKWARD). */
static peft_status int8_input_grad(const peft_trainer *t, const peft_layer_info *L,
				   const peft_weights_s8 *w8, const float *g, float *grad_in,
				   bool accumulate)
{
#ifdef CONFIG_PEFT_INT8_BACKWARD
	const peft_fc_params fp = peft_op_fc_params(L);
	int16_t *scratch = (int16_t *)(void *)work_bytes(t, PEFT_BUF_BWD_S8S8, L->index);

	return peft_fc_bwd_input_s8s8(&fp, w8, g, grad_in, accumulate, scratch,
				      peft_fc_bwd_input_s8s8_get_buffer_size(&fp));
#else
	(void)t, (void)L, (void)w8, (void)g, (void)grad_in, (void)accumulate;
	return PEFT_ERR_PLAN_INT8_NOT_COMPILED;
#endif
}

/* The op's backward over the call's samples, as op_forward runs its forward
 * (the weight and bias gradients add up over the per-sample calls). */
static peft_status op_backward(const peft_layer_info *sample, const peft_layer_info *all,
			       int32_t samples, const peft_op_backward_args *a)
{
	const peft_op *op = peft_op_find(sample->rec.op);

	if (samples == 1 || peft_op_stacks_samples(sample)) {
		peft_op_backward_args one = *a;

		one.layer = all;
		return op->backward(&one);
	}
	for (int32_t s = 0; s < samples; s++) {
		peft_op_backward_args one = *a;

		one.layer = sample;
		one.g = a->g + s * sample->out_size;
		one.x = a->x == NULL ? NULL : a->x + s * sample->in_size[0];
		for (int j = 0; j < 2; j++) {
			one.grad_in[j] = a->grad_in[j] == NULL
						 ? NULL
						 : a->grad_in[j] + s * sample->in_size[j];
		}
		PEFT_TRY(op->backward(&one));
	}
	return PEFT_OK;
}

static peft_status layer_backward(const peft_trainer *t, const peft_layer_info *sample,
				  int32_t samples)
{
	peft_layer_info all;
	const peft_layer_info *L = stacked(sample, samples, &all);
	const peft_layer_rec *r = &L->rec;
	const peft_plan *plan = t->plan;
	peft_layer_ctx ctx;
	float *grad_in[2] = {NULL, NULL};
	bool acc[2] = {false, false};

	const int32_t k = L->index;

	bind_params(t, L, &ctx);
	for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
		if (plan->update == PEFT_UPDATE_LAYER && ctx.grad[p] != NULL) {
			memset(ctx.grad[p], 0, (size_t)L->counts[p] * sizeof(float));
		}
	}
	ctx.g = work_f32(t, PEFT_BUF_GRAD, r->output);
	ctx.u = work_f32(t, PEFT_BUF_KEEP_U, k);
	ctx.lin = work_f32(t, PEFT_BUF_KEEP_LIN, k);
	if (L->scales_lin && plan->act_cache == PEFT_CACHE_S8) {
		const peft_tensor_rec o = tensor(t, r->output);
		/* Staged where the input gradient goes after: gamma's gradient reads it first. */
		float *stage = work_f32(t, PEFT_BUF_BWD_GLIN, k);

		PEFT_TRY(peft_dequantize_s8(
			L->out_size,
			(const int8_t *)(const void *)work_bytes(t, PEFT_BUF_KEEP_LIN, k), o.scale,
			o.zero_point, stage));
		ctx.lin = stage;
	}
	ctx.tmp_a = work_f32(t, PEFT_BUF_BWD_GLIN, k);
	ctx.tmp_b = work_f32(t, PEFT_BUF_BWD_DU, k);
	for (uint32_t j = 0; j < r->num_inputs; j++) {
		if (L->backward_input[j]) {
			grad_in[j] = work_f32(t, PEFT_BUF_GRAD, r->input[j]);
			acc[j] = !first_contribution(plan, r, L->index, j);
		}
	}
	ctx.grad_in = grad_in[0];
	ctx.grad_in_accumulate = acc[0];
	/* IA3's input scaling: the op's input gradient (wrt l x) goes to its scratch, and
	 * the method's bwd_input hook makes grad_in of it. */
	ctx.gx = L->scales_input ? work_f32(t, PEFT_BUF_BWD_GX, k) : NULL;
	float *op_grad_in = L->scales_input ? ctx.gx : L->int8_input_grad ? NULL : grad_in[0];

	if (r->activation != PEFT_ACT_NONE) {
		PEFT_TRY(peft_activation_bwd_mask_f32(L->out_size, work_bytes(t, PEFT_BUF_MASK, k),
						      ctx.g));
	}
	ctx.x_kept = NULL;
	if (L->needs_input_values && L->streams_input && plan->act_cache == PEFT_CACHE_S8) {
		const peft_tensor_rec in = tensor(t, r->input[0]);

		ctx.x = NULL; /* LoRA A's gradient reads it in row blocks */
		ctx.x_kept =
			(const int8_t *)(const void *)work_bytes(t, PEFT_BUF_KEEP, r->input[0]);
		ctx.x_scale = in.scale;
		ctx.x_zero_point = in.zero_point;
		ctx.x_stage = work_f32(t, PEFT_BUF_BWD_IN, k);
	} else if (L->needs_input_values) {
		PEFT_TRY(tensor_kept(t, r->input[0], samples, work_f32(t, PEFT_BUF_BWD_IN, k),
				     &ctx.x));
	}
	ctx.g_out = ctx.g; /* scale+shift writes its input gradient elsewhere (tmp_a) */
	PEFT_TRY(peft_methods_run(L->rec.methods, PEFT_HOOK_BWD_AFFINE, &ctx));
	/* The input gradient through the weights the forward used (straight-through). */
	float *rounded =
		L->rounds_weights || L->rounds_lora ? work_f32(t, PEFT_BUF_BWD_QW, k) : NULL;

	if (rounded != NULL && L->rounds_weights) {
		round_weights(L, &ctx, rounded);
	}
	if (L->rounds_lora) {
		op_grad_in = NULL; /* computed below, through the rounded rows */
	}
	const peft_op_backward_args op_args = {L,
					       ctx.g,
					       ctx.x,
					       L->rounds_weights ? rounded
								 : ctx.param[PEFT_PARAM_WEIGHT],
					       &ctx.w8,
					       ctx.grad[PEFT_PARAM_WEIGHT],
					       ctx.grad[PEFT_PARAM_BIAS],
					       /* the int8 path computes its input gradient below */
					       {op_grad_in, grad_in[1]},
					       {L->scales_input ? false : acc[0], acc[1]}};

	PEFT_TRY(op_backward(sample, L, samples, &op_args));
	if (L->rounds_lora && grad_in[0] != NULL) {
		lora_rounded_input_grad(L, &ctx, ctx.g, grad_in[0], acc[0], rounded);
		ctx.grad_in = NULL;
	}
	if (L->int8_input_grad && grad_in[0] != NULL) {
		PEFT_TRY(int8_input_grad(t, L, &ctx.w8, ctx.g, grad_in[0], acc[0]));
	}
	PEFT_TRY(peft_methods_run(L->rec.methods, PEFT_HOOK_BWD_ADAPTER, &ctx));
	PEFT_TRY(peft_methods_run(L->rec.methods, PEFT_HOOK_BWD_INPUT, &ctx));
	if (plan->update == PEFT_UPDATE_LAYER) {
		return update_layer(t, L, &ctx);
	}
	return PEFT_OK;
}

/* The losses of the call's `samples` from their logits (probs per sample, the
 * losses into `losses` unless NULL); PEFT_ERR_NUMERIC or PEFT_ERR_DIVERGED when
 * one of them may not add its gradient. */
static peft_status losses_of(peft_trainer *t, const float *logits, const int32_t *labels,
			     int32_t samples, float *losses)
{
	const int32_t classes = t->plan->num_classes;
	float *probs = work_f32(t, PEFT_BUF_PROBS, 0);

	for (int32_t s = 0; s < samples; s++) {
		float value;

		PEFT_TRY(peft_softmax_xent_fwd_f32(classes, logits + s * classes, labels[s],
						   probs + s * classes, &value));
		if (!isfinite(value)) {
			return PEFT_ERR_NUMERIC;
		}
		if (value > t->max_loss) {
			return PEFT_ERR_DIVERGED; /* no backward: the sample adds nothing */
		}
		if (losses != NULL) {
			losses[s] = value;
		}
	}
	return PEFT_OK;
}

static peft_status forward_loss(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
				int32_t label, float *loss)
{
	const float *logits = NULL;
	float value;

	peft_trainer_clear_pending(t);
	if (t->mode != PEFT_MODE_TRAIN || label < 0 || label >= t->plan->num_classes) {
		return PEFT_ERR_ARG;
	}
	PEFT_TRY(forward(t, in_s8, in_f32, 1, &logits));
	PEFT_TRY(losses_of(t, logits, &label, 1, &value));
	t->pending_label = label;
	t->pending_labels = &t->pending_label;
	t->pending_samples = 1;
	if (loss != NULL) {
		*loss = value;
	}
	return PEFT_OK;
}

/* Backward of the forward of the call's `samples`, adding their gradients. */
static peft_status backward_samples(peft_trainer *t, const int32_t *labels, int32_t samples)
{
	const peft_plan *plan = t->plan;
	const int32_t classes = plan->num_classes;
	const float *probs = work_f32(t, PEFT_BUF_PROBS, 0);
	float *grad = work_f32(t, PEFT_BUF_GRAD, plan->output_tensor);

	if (plan->update == PEFT_UPDATE_LAYER) {
		t->step = next_step(t->step); /* one update per sample: Adam counts them */
	}
	for (int32_t s = 0; s < samples; s++) {
		PEFT_TRY(peft_softmax_xent_bwd_f32(classes, probs + s * classes, labels[s],
						   grad + s * classes));
	}
	for (int32_t k = plan->num_layers - 1; k >= 0; k--) {
		peft_layer_info L;

		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		if (L.runs_backward) {
			PEFT_TRY(layer_backward(t, &L, samples));
		}
	}
	if (plan->update == PEFT_UPDATE_BATCH) {
		t->samples += (uint32_t)samples; /* step() applies the accumulated gradients */
	}
	return PEFT_OK;
}

peft_status peft_trainer_backward(peft_trainer *t)
{
	if (!trainer_ok(t) || t->mode != PEFT_MODE_TRAIN || t->pending_samples < 1) {
		return PEFT_ERR_ARG;
	}
	const int32_t label = t->pending_label;
	const int32_t *labels = t->pending_samples == 1 ? &label : t->pending_labels;
	const int32_t samples = t->pending_samples;

	peft_trainer_clear_pending(t);
	return backward_samples(t, labels, samples);
}

peft_status peft_trainer_forward_s8(peft_trainer *t, const int8_t *input, int32_t label,
				    float *loss)
{
	if (!trainer_ok(t) || input == NULL) {
		return PEFT_ERR_ARG;
	}
	return forward_loss(t, input, NULL, label, loss);
}

peft_status peft_trainer_forward_f32(peft_trainer *t, const float *input, int32_t label,
				     float *loss)
{
	if (!trainer_ok(t) || input == NULL) {
		return PEFT_ERR_ARG;
	}
	return forward_loss(t, NULL, input, label, loss);
}

static peft_status train_sample(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
				int32_t label, float *loss)
{
	PEFT_TRY(forward_loss(t, in_s8, in_f32, label, loss));
	return peft_trainer_backward(t);
}

peft_status peft_trainer_train_sample_s8(peft_trainer *t, const int8_t *input, int32_t label,
					 float *loss)
{
	if (!trainer_ok(t) || input == NULL) {
		return PEFT_ERR_ARG;
	}
	return train_sample(t, input, NULL, label, loss);
}

peft_status peft_trainer_train_sample_f32(peft_trainer *t, const float *input, int32_t label,
					  float *loss)
{
	if (!trainer_ok(t) || input == NULL) {
		return PEFT_ERR_ARG;
	}
	return train_sample(t, NULL, input, label, loss);
}

/* Values of one input sample (the split tensor). */
static int32_t input_size(const peft_trainer *t)
{
	const peft_tensor_rec r = tensor(t, t->plan->input_tensor);

	return size_of(&r);
}

/* The arguments every batch call checks: 1 .. batch capacity samples. */
static bool batch_ok(const peft_trainer *t, const void *inputs, int32_t samples)
{
	return trainer_ok(t) && inputs != NULL && samples >= 1 && samples <= t->plan->batch;
}

/* Sample s's answer of a batch call: its status, and its value where asked. */
static void put_sample(float *values, peft_status *statuses, int32_t s, float value, peft_status st)
{
	if (values != NULL) {
		values[s] = value;
	}
	if (statuses != NULL) {
		statuses[s] = st;
	}
}

/* A batch call's labels: a trainer in PEFT_MODE_TRAIN, each label a class. */
static bool labels_ok(const peft_trainer *t, const int32_t *labels, int32_t samples)
{
	if (t->mode != PEFT_MODE_TRAIN || labels == NULL) {
		return false;
	}
	for (int32_t s = 0; s < samples; s++) {
		if (labels[s] < 0 || labels[s] >= t->plan->num_classes) {
			return false;
		}
	}
	return true;
}

/* Forward and losses of the call's samples, all of which may add their gradient. */
static peft_status forward_losses(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
				  const int32_t *labels, int32_t samples, float *losses)
{
	const float *logits = NULL;

	peft_trainer_clear_pending(t);
	PEFT_TRY(forward(t, in_s8, in_f32, samples, &logits));
	return losses_of(t, logits, labels, samples, losses);
}

peft_status peft_trainer_forward_batch_s8(peft_trainer *t, const int8_t *inputs,
					  const int32_t *labels, int32_t samples, float *losses)
{
	if (!batch_ok(t, inputs, samples) || !labels_ok(t, labels, samples)) {
		return PEFT_ERR_ARG;
	}
	PEFT_TRY(forward_losses(t, inputs, NULL, labels, samples, losses));
	t->pending_label = samples == 1 ? labels[0] : -1;
	t->pending_labels = labels;
	t->pending_samples = samples;
	return PEFT_OK;
}

static peft_status train_batch(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
			       const int32_t *labels, int32_t samples, float *losses,
			       peft_status *statuses)
{
	const int32_t n_in = input_size(t);

	if (!labels_ok(t, labels, samples)) {
		return PEFT_ERR_ARG;
	}
	peft_trainer_clear_pending(t);
	if (samples > 1) {
		const peft_status st = forward_losses(t, in_s8, in_f32, labels, samples, losses);

		if (st == PEFT_OK) {
			for (int32_t s = 0; s < samples; s++) {
				put_sample(NULL, statuses, s, 0.0f, PEFT_OK);
			}
			return backward_samples(t, labels, samples);
		}
		/* A sample that may not add its gradient: one at a time, as
		 * peft_trainer_train_sample_*(), so the others still do. */
	}
	peft_status first = PEFT_OK;

	for (int32_t s = 0; s < samples; s++) {
		float value = NAN;
		const peft_status st =
			train_sample(t, in_s8 != NULL ? in_s8 + s * n_in : NULL,
				     in_f32 != NULL ? in_f32 + s * n_in : NULL, labels[s], &value);

		put_sample(losses, statuses, s, st == PEFT_OK ? value : NAN, st);
		if (st != PEFT_OK && first == PEFT_OK) {
			first = st;
		}
	}
	return first;
}

peft_status peft_trainer_train_batch_s8(peft_trainer *t, const int8_t *inputs,
					const int32_t *labels, int32_t samples, float *losses,
					peft_status *statuses)
{
	if (!batch_ok(t, inputs, samples)) {
		return PEFT_ERR_ARG;
	}
	return train_batch(t, inputs, NULL, labels, samples, losses, statuses);
}

peft_status peft_trainer_train_batch_f32(peft_trainer *t, const float *inputs,
					 const int32_t *labels, int32_t samples, float *losses,
					 peft_status *statuses)
{
	if (!batch_ok(t, inputs, samples)) {
		return PEFT_ERR_ARG;
	}
	return train_batch(t, NULL, inputs, labels, samples, losses, statuses);
}

/* The logits of the call's `samples` after their forward: each finite, or
 * PEFT_ERR_LOGITS_NONFINITE (nothing written). */
static peft_status answer_logits(const peft_trainer *t, peft_status st, const float *logits,
				 int32_t samples, float *logits_out, int32_t *predicted)
{
	const int32_t n = t->plan->num_classes;

	/* A value on the way to the logits that is not finite (the int8 cache
	 * refuses it) makes them non-finite too. */
	if (st == PEFT_ERR_NUMERIC) {
		return PEFT_ERR_LOGITS_NONFINITE;
	}
	PEFT_TRY(st);
	for (int32_t i = 0; i < samples * n; i++) {
		if (!isfinite(logits[i])) {
			return PEFT_ERR_LOGITS_NONFINITE;
		}
	}
	for (int32_t s = 0; s < samples; s++) {
		const float *z = logits + s * n;
		int32_t best = 0;

		for (int32_t i = 0; i < n; i++) {
			if (logits_out != NULL) {
				logits_out[s * n + i] = z[i];
			}
			if (z[i] > z[best]) {
				best = i;
			}
		}
		if (predicted != NULL) {
			predicted[s] = best;
		}
	}
	return PEFT_OK;
}

static peft_status predict(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
			   int32_t samples, float *logits_out, int32_t *predicted)
{
	const float *logits = NULL;

	peft_trainer_clear_pending(t); /* the forward below overwrites what backward needed */
	PEFT_TRY(set_input(t, in_s8, in_f32, samples));
	const peft_status st = forward_layers(t, samples, &logits);

	return answer_logits(t, st, logits, samples, logits_out, predicted);
}

peft_status peft_trainer_predict_s8(peft_trainer *t, const int8_t *input, float *logits,
				    int32_t *predicted)
{
	if (!trainer_ok(t) || input == NULL) {
		return PEFT_ERR_ARG;
	}
	return predict(t, input, NULL, 1, logits, predicted);
}

peft_status peft_trainer_predict_f32(peft_trainer *t, const float *input, float *logits,
				     int32_t *predicted)
{
	if (!trainer_ok(t) || input == NULL) {
		return PEFT_ERR_ARG;
	}
	return predict(t, NULL, input, 1, logits, predicted);
}

static peft_status predict_batch(peft_trainer *t, const int8_t *in_s8, const float *in_f32,
				 int32_t samples, float *logits, int32_t *predicted,
				 peft_status *statuses)
{
	const int32_t n_in = input_size(t);
	const int32_t n = t->plan->num_classes;

	if (samples > 1 && predict(t, in_s8, in_f32, samples, logits, predicted) == PEFT_OK) {
		for (int32_t s = 0; s < samples; s++) {
			put_sample(NULL, statuses, s, 0.0f, PEFT_OK);
		}
		return PEFT_OK;
	}
	/* A sample without an answer: one at a time, so the others still get theirs. */
	peft_status first = PEFT_OK;

	for (int32_t s = 0; s < samples; s++) {
		const peft_status st = predict(t, in_s8 != NULL ? in_s8 + s * n_in : NULL,
					       in_f32 != NULL ? in_f32 + s * n_in : NULL, 1,
					       logits != NULL ? logits + s * n : NULL,
					       predicted != NULL ? predicted + s : NULL);

		put_sample(NULL, statuses, s, 0.0f, st);
		if (st != PEFT_OK && first == PEFT_OK) {
			first = st;
		}
	}
	return first;
}

peft_status peft_trainer_predict_batch_s8(peft_trainer *t, const int8_t *inputs, int32_t samples,
					  float *logits, int32_t *predicted, peft_status *statuses)
{
	if (!batch_ok(t, inputs, samples)) {
		return PEFT_ERR_ARG;
	}
	return predict_batch(t, inputs, NULL, samples, logits, predicted, statuses);
}

peft_status peft_trainer_predict_batch_f32(peft_trainer *t, const float *inputs, int32_t samples,
					   float *logits, int32_t *predicted, peft_status *statuses)
{
	if (!batch_ok(t, inputs, samples)) {
		return PEFT_ERR_ARG;
	}
	return predict_batch(t, NULL, inputs, samples, logits, predicted, statuses);
}

/* ---- optimizer step ---- */

/* Forget the batch: gradients zeroed, no sample counted. */
static void clear_batch(peft_trainer *t)
{
	memset(t->arena + t->plan->param_grads.offset, 0, t->plan->param_grads.size);
	t->samples = 0;
}

/* The factor that turns the summed gradients into the applied ones: 1 / samples,
 * times the clipping factor. The sum of squares also finds any non-finite
 * gradient (NaN and infinity propagate) and an overflowing norm. */
static peft_status gradient_scale(const peft_trainer *t, float *scale)
{
	const peft_optimizer_config *o = &t->plan->optimizer;
	float sum = 0.0f;

	*scale = 1.0f / (float)t->samples;
	for (int32_t i = 0;; i++) {
		peft_param_info info;

		if (peft_trainer_param_info(t, i, &info) != PEFT_OK) {
			break;
		}
		PEFT_TRY(peft_sum_squares_f32(info.count, info.grad, &sum));
	}
	const float norm = sqrtf(sum) * *scale;

	if (!isfinite(norm)) {
		return PEFT_ERR_NUMERIC;
	}
	if (o->clip_norm > 0.0f && norm > o->clip_norm) {
		*scale *= o->clip_norm / norm;
	}
	return PEFT_OK;
}

/* Every trainable array through the optimizer: a dry run that only checks the
 * new values (apply false), or the update itself (step: Adam's t). */
static peft_status optimizer_pass(const peft_trainer *t, float scale, uint32_t step, bool apply)
{
	const peft_plan *plan = t->plan;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_rec r;

		peft_plan_read_layer(plan, k, &r);
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (r.grad[p] == PEFT_NONE) {
				continue;
			}
			peft_layer_info L;

			PEFT_TRY(peft_plan_layer_info(plan, k, &L));
			PEFT_TRY(optimizer_update(
				t, &r, p, L.counts[p], peft_arena_f32(t, r.param[p]),
				peft_arena_f32(t, r.grad[p]), scale, step, apply));
		}
	}
	return PEFT_OK;
}

peft_status peft_trainer_step(peft_trainer *t)
{
	if (!trainer_ok(t) || t->mode != PEFT_MODE_TRAIN) {
		return PEFT_ERR_ARG;
	}
	if (t->samples == 0) {
		return PEFT_OK;
	}
	float scale;
	peft_status st = gradient_scale(t, &scale);

	if (st == PEFT_OK) {
		st = optimizer_pass(t, scale, next_step(t->step), false);
	}
	if (st == PEFT_OK) {
		/* The dry run computed these very values: the update cannot fail now. */
		t->step = next_step(t->step);
		st = optimizer_pass(t, scale, t->step, true);

		/* Whatever the update wrote, what is derived from it follows. */
		const peft_status derived = peft_trainer_params_changed(t);

		st = st != PEFT_OK ? st : derived;
	}
	clear_batch(t);
	return st;
}

/* ---- introspection ---- */

peft_status peft_trainer_arena_high_water(const peft_trainer *t, size_t *bytes)
{
	if (!trainer_ok(t) || bytes == NULL) {
		return PEFT_ERR_ARG;
	}
	size_t n = t->arena_size;

	while (n > 0 && t->arena[n - 1] == PEFT_ARENA_CANARY) {
		n--;
	}
	*bytes = n;
	return PEFT_OK;
}

peft_status peft_trainer_param_count(const peft_trainer *t, int32_t *count)
{
	if (!trainer_ok(t) || count == NULL) {
		return PEFT_ERR_ARG;
	}
	int32_t n = 0;

	for (int32_t k = 0; k < t->plan->num_layers; k++) {
		peft_layer_rec r;

		peft_plan_read_layer(t->plan, k, &r);
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			n += r.param[p] != PEFT_NONE ? 1 : 0;
		}
	}
	*count = n;
	return PEFT_OK;
}

peft_status peft_trainer_param_info(const peft_trainer *t, int32_t index, peft_param_info *info)
{
	if (!trainer_ok(t) || info == NULL || index < 0) {
		return PEFT_ERR_ARG;
	}
	int32_t n = 0;

	for (int32_t k = 0; k < t->plan->num_layers; k++) {
		peft_layer_rec r;

		peft_plan_read_layer(t->plan, k, &r);
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (r.param[p] == PEFT_NONE || n++ != index) {
				continue;
			}
			peft_layer_info L;

			PEFT_TRY(peft_plan_layer_info(t->plan, k, &L));
			info->layer = k;
			info->graph_layer = r.graph_layer;
			info->kind = (peft_param_kind)p;
			info->data = peft_arena_f32(t, r.param[p]);
			info->grad =
				t->mode == PEFT_MODE_TRAIN ? peft_arena_f32(t, r.grad[p]) : NULL;
			info->count = L.counts[p];
			return PEFT_OK;
		}
	}
	return PEFT_ERR_ARG;
}
