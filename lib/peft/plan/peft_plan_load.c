/* Plan blob reader: header, CRC, field and model-reference checks, queries.
 * The arena layout check is in peft_plan_layout.c. Format: docs/formats.md. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../common/peft_blob.h"
#include "../common/peft_try.h"
#include "../methods/peft_method.h"
#include "../ops/peft_ops.h"
#include "peft/peft_bytes.h"
#include "peft/peft_crc32.h"
#include "peft/peft_formats.h"
#include "peft/peft_plan.h"
#include "peft_plan_internal.h"

static void rd_ref(const uint8_t *p, peft_ref_rec *r)
{
	r->offset = peft_rd32(p + PEFT_PLAN_REF_OFF_OFFSET);
	r->count = peft_rd32(p + PEFT_PLAN_REF_OFF_COUNT);
	r->scale_offset = peft_rd32(p + PEFT_PLAN_REF_OFF_SCALE_OFFSET);
	r->scale_count = peft_rd32(p + PEFT_PLAN_REF_OFF_SCALE_COUNT);
}

void peft_plan_read_tensor(const peft_plan *plan, int32_t i, peft_tensor_rec *out)
{
	const uint8_t *p = plan->blob + PEFT_PLAN_HEADER_SIZE + (size_t)i * PEFT_PLAN_TENSOR_SIZE;

	out->h = peft_rdi32(p + PEFT_PLAN_TENSOR_OFF_H);
	out->w = peft_rdi32(p + PEFT_PLAN_TENSOR_OFF_W);
	out->c = peft_rdi32(p + PEFT_PLAN_TENSOR_OFF_C);
	out->scale = peft_rdf32(p + PEFT_PLAN_TENSOR_OFF_SCALE);
	out->zero_point = peft_rdi32(p + PEFT_PLAN_TENSOR_OFF_ZERO_POINT);
	out->cache_dtype = p[PEFT_PLAN_TENSOR_OFF_CACHE_DTYPE];
	out->needs_grad = p[PEFT_PLAN_TENSOR_OFF_NEEDS_GRAD];
	out->reserved = peft_rd16(p + PEFT_PLAN_TENSOR_OFF_RESERVED);
}

void peft_plan_read_layer(const peft_plan *plan, int32_t i, peft_layer_rec *out)
{
	const uint8_t *p = plan->blob + PEFT_PLAN_HEADER_SIZE +
			   (size_t)plan->num_tensors * PEFT_PLAN_TENSOR_SIZE +
			   (size_t)i * PEFT_PLAN_LAYER_SIZE;

	out->op = p[PEFT_PLAN_LAYER_OFF_OP];
	out->activation = p[PEFT_PLAN_LAYER_OFF_ACTIVATION];
	out->methods = peft_rd16(p + PEFT_PLAN_LAYER_OFF_METHODS);
	out->graph_layer = peft_rd16(p + PEFT_PLAN_LAYER_OFF_GRAPH_LAYER);
	out->num_inputs = peft_rd16(p + PEFT_PLAN_LAYER_OFF_NUM_INPUTS);
	out->input[0] = peft_rd16(p + PEFT_PLAN_LAYER_OFF_INPUT);
	out->input[1] = peft_rd16(p + PEFT_PLAN_LAYER_OFF_INPUT + sizeof(uint16_t));
	out->output = peft_rd16(p + PEFT_PLAN_LAYER_OFF_OUTPUT);
	out->lora_rank = peft_rd16(p + PEFT_PLAN_LAYER_OFF_LORA_RANK);
	out->lora_alpha = peft_rdf32(p + PEFT_PLAN_LAYER_OFF_LORA_ALPHA);
	out->kernel_h = peft_rdi32(p + PEFT_PLAN_LAYER_OFF_KERNEL_H);
	out->kernel_w = peft_rdi32(p + PEFT_PLAN_LAYER_OFF_KERNEL_W);
	out->stride_h = peft_rdi32(p + PEFT_PLAN_LAYER_OFF_STRIDE_H);
	out->stride_w = peft_rdi32(p + PEFT_PLAN_LAYER_OFF_STRIDE_W);
	out->pad_top = peft_rdi32(p + PEFT_PLAN_LAYER_OFF_PAD_TOP);
	out->pad_left = peft_rdi32(p + PEFT_PLAN_LAYER_OFF_PAD_LEFT);
	rd_ref(p + PEFT_PLAN_LAYER_OFF_WEIGHTS, &out->weights);
	rd_ref(p + PEFT_PLAN_LAYER_OFF_BIAS, &out->bias);
	out->reserved = peft_rd32(p + PEFT_PLAN_LAYER_OFF_RESERVED);
	for (int k = 0; k < PEFT_PARAM_KIND_COUNT; k++) {
		out->param[k] = peft_rd32(p + PEFT_PLAN_LAYER_OFF_PARAM + 4 * k);
		out->grad[k] = peft_rd32(p + PEFT_PLAN_LAYER_OFF_GRAD + 4 * k);
		out->opt_m[k] = peft_rd32(p + PEFT_PLAN_LAYER_OFF_OPT_M + 4 * k);
		out->opt_v[k] = peft_rd32(p + PEFT_PLAN_LAYER_OFF_OPT_V + 4 * k);
	}
}

void peft_plan_read_buffer(const peft_plan *plan, int32_t i, peft_buffer_rec *out)
{
	const uint8_t *p = plan->blob + PEFT_PLAN_HEADER_SIZE +
			   (size_t)plan->num_tensors * PEFT_PLAN_TENSOR_SIZE +
			   (size_t)plan->num_layers * PEFT_PLAN_LAYER_SIZE +
			   (size_t)i * PEFT_PLAN_BUFFER_SIZE;

	out->kind = p[PEFT_PLAN_BUFFER_OFF_KIND];
	out->arena = p[PEFT_PLAN_BUFFER_OFF_ARENA];
	out->part = p[PEFT_PLAN_BUFFER_OFF_PART];
	out->reserved = p[PEFT_PLAN_BUFFER_OFF_RESERVED];
	out->owner = peft_rd16(p + PEFT_PLAN_BUFFER_OFF_OWNER);
	out->first = peft_rd16(p + PEFT_PLAN_BUFFER_OFF_FIRST);
	out->last = peft_rd16(p + PEFT_PLAN_BUFFER_OFF_LAST);
	out->reserved2 = peft_rd16(p + PEFT_PLAN_BUFFER_OFF_RESERVED2);
	out->size = peft_rd32(p + PEFT_PLAN_BUFFER_OFF_SIZE);
	out->offset = peft_rd32(p + PEFT_PLAN_BUFFER_OFF_ARENA_OFFSET);
}

/* Table order: arena, kind, owner, part (owner < 2^16, kind < 2^6, part < 2^8). */
static uint32_t buffer_key(uint32_t arena, uint32_t kind, uint32_t owner, uint32_t part)
{
	return (arena << 30) | (kind << 24) | (owner << 8) | part;
}

uint32_t peft_plan_buffer_offset(const peft_plan *plan, int arena, peft_buffer_kind kind,
				 int32_t owner, int32_t part)
{
	const uint32_t key =
		buffer_key((uint32_t)arena, (uint32_t)kind, (uint32_t)owner, (uint32_t)part);
	int32_t lo = 0;
	int32_t hi = plan->num_buffers;

	while (lo < hi) {
		const int32_t mid = lo + (hi - lo) / 2;
		peft_buffer_rec b;

		peft_plan_read_buffer(plan, mid, &b);
		const uint32_t k = buffer_key(b.arena, b.kind, b.owner, b.part);

		if (k == key) {
			return b.offset;
		}
		if (k < key) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return PEFT_NONE;
}

static peft_dims tensor_dims(const peft_plan *plan, int32_t t)
{
	peft_tensor_rec rec;

	peft_plan_read_tensor(plan, t, &rec);
	return (peft_dims){rec.h, rec.w, rec.c};
}

/* Tensor shapes were bounded (peft_shape_ok) before any caller runs. */
static int32_t dims_size(const peft_dims *d)
{
	return peft_shape_ok(d->h, d->w, d->c) ? d->h * d->w * d->c : 0;
}

/* count == a * b * c * d for positive factors of at most 2^24, without
 * overflow: the partial product only grows, so stop once it passes count. */
/* out == (in + pad_before + pad_after - kernel) / stride + 1 for some
 * 0 <= pad_after < kernel + stride (the kernels' geometry rule). */
static bool axis_ok(int32_t in, int32_t out, int32_t kernel, int32_t stride, int32_t pad)
{
	if (kernel <= 0 || stride <= 0 || pad < 0 || kernel > PEFT_MAX_KERNEL ||
	    stride > PEFT_MAX_KERNEL || pad >= kernel + stride) {
		return false;
	}
	for (int64_t after = 0; after < (int64_t)kernel + stride; after++) {
		int64_t span = (int64_t)in + pad + after - kernel;

		if (span >= 0 && span / stride + 1 == out) {
			return true;
		}
	}
	return false;
}

static bool ref_is_zero(const peft_ref_rec *r)
{
	return r->offset == 0 && r->count == 0 && r->scale_offset == 0 && r->scale_count == 0;
}

static bool scale_count_ok(uint32_t n, int32_t channels)
{
	return n == 1u || n == (uint32_t)channels;
}

/* A fully connected layer, or a 1x1 stride-1 unpadded conv (the same [out][in]
 * weights, one row per pixel): where LoRA and DoRA attach, and what the int8
 * backward kernel computes (planning/plan.py has_fc_form). */
static bool has_fc_form(const peft_layer_rec *r)
{
	return r->op == PEFT_OP_FULLY_CONNECTED ||
	       (r->op == PEFT_OP_CONV_2D && r->kernel_h == 1 && r->kernel_w == 1 &&
		r->stride_h == 1 && r->stride_w == 1 && r->pad_top == 0 && r->pad_left == 0);
}

/* Everything that needs only the record and its tensors' shapes. */
static peft_status check_layer_fields(const peft_plan *plan, int32_t k)
{
	peft_layer_rec r;

	peft_plan_read_layer(plan, k, &r);
	const peft_op *op = peft_op_find(r.op);

	if (op == NULL || r.activation > PEFT_ACT_RELU6 ||
	    (r.methods & ~(uint32_t)PEFT_METHOD_ALL) != 0 || r.reserved != 0 ||
	    r.output != (uint32_t)k + 1u) {
		return PEFT_ERR_PLAN_FIELD;
	}
	const bool two_inputs = op->num_inputs == 2u;

	if (r.num_inputs != op->num_inputs || r.input[0] > k ||
	    (two_inputs ? r.input[1] > k : r.input[1] != PEFT_NO_INPUT)) {
		return PEFT_ERR_PLAN_FIELD;
	}
	if (r.methods != 0 && !op->linear) {
		return PEFT_ERR_PLAN_FIELD;
	}
	const peft_dims in = tensor_dims(plan, r.input[0]);
	const peft_dims out = tensor_dims(plan, r.output);
	const int64_t in_size = dims_size(&in);
	const int64_t out_size = dims_size(&out);

	/* DoRA rescales the whole layer (a trained bias or weight, scale+shift or IA3 would
	 * see the wrong gradient); IA3 and scale+shift both scale the linear output. IA3 on
	 * the input: PEFT_METHODS_NOT_WITH_IA3_INPUT. */
	if (((r.methods & PEFT_METHOD_DORA) && r.methods != PEFT_METHOD_DORA) ||
	    ((r.methods & PEFT_METHOD_IA3) && (r.methods & PEFT_METHOD_SCALE_SHIFT)) ||
	    ((r.methods & PEFT_METHOD_IA3_INPUT) &&
	     (r.methods & PEFT_METHODS_NOT_WITH_IA3_INPUT))) {
		return PEFT_ERR_PLAN_FIELD;
	}
	if (r.methods & (PEFT_METHOD_LORA | PEFT_METHOD_DORA)) {
		if (!has_fc_form(&r) || r.lora_rank < 1 || r.lora_rank > PEFT_MAX_LORA_RANK ||
		    !isfinite(r.lora_alpha) || r.lora_alpha <= 0.0f) {
			return PEFT_ERR_PLAN_FIELD;
		}
	} else if (r.lora_rank != 0 || r.lora_alpha != 0.0f) {
		return PEFT_ERR_PLAN_FIELD;
	}
	if (!op->linear) {
		if (!ref_is_zero(&r.weights) || !ref_is_zero(&r.bias)) {
			return PEFT_ERR_PLAN_FIELD;
		}
	} else {
		if (r.weights.count > PEFT_MAX_TENSOR_ELEMENTS) {
			return PEFT_ERR_PLAN_SHAPE;
		}
		if (r.weights.count == 0 || !scale_count_ok(r.weights.scale_count, out.c)) {
			return PEFT_ERR_PLAN_FIELD;
		}
		if (!ref_is_zero(&r.bias) && (r.bias.count != (uint32_t)out.c ||
					      !scale_count_ok(r.bias.scale_count, out.c))) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	if (op->window && (!axis_ok(in.h, out.h, r.kernel_h, r.stride_h, r.pad_top) ||
			   !axis_ok(in.w, out.w, r.kernel_w, r.stride_w, r.pad_left))) {
		return PEFT_ERR_PLAN_FIELD;
	}
	const peft_op_shapes shapes = {
		&r,
		{in, two_inputs ? tensor_dims(plan, r.input[1]) : (peft_dims){0, 0, 0}},
		out,
		in_size,
		out_size};

	if (!op->shapes_ok(&shapes)) {
		return PEFT_ERR_PLAN_FIELD;
	}
	return PEFT_OK;
}

/* A weight/bias reference lies inside the model, its int32/float arrays aligned. */
static peft_status check_ref(const peft_plan *plan, const peft_ref_rec *r, uint32_t elem)
{
	const uint64_t len = plan->model_len;

	if ((elem == 4u && r->offset % 4u != 0) || r->scale_offset % 4u != 0) {
		return PEFT_ERR_PLAN_ALIGNMENT;
	}
	if ((uint64_t)r->offset + (uint64_t)r->count * elem > len ||
	    (uint64_t)r->scale_offset + (uint64_t)r->scale_count * 4u > len) {
		return PEFT_ERR_PLAN_MODEL_OFFSET;
	}
	return PEFT_OK;
}

peft_status peft_plan_layer_info(const peft_plan *plan, int32_t i, peft_layer_info *out)
{
	peft_layer_rec *r = &out->rec;
	peft_tensor_rec t;

	memset(out, 0, sizeof(*out));
	peft_plan_read_layer(plan, i, r);
	out->index = i;
	for (uint32_t k = 0; k < r->num_inputs && k < 2u; k++) {
		out->in[k] = tensor_dims(plan, r->input[k]);
		out->in_size[k] = dims_size(&out->in[k]);
		peft_plan_read_tensor(plan, r->input[k], &t);
		out->backward_input[k] = t.needs_grad != 0;
	}
	out->out = tensor_dims(plan, r->output);
	out->out_size = dims_size(&out->out);
	out->out_features = out->out.c;
	if (r->op == PEFT_OP_FULLY_CONNECTED) {
		out->in_features = (int32_t)(r->weights.count / (uint32_t)out->out.c);
		out->rows = out->in_size[0] / out->in_features;
	} else {
		out->in_features = out->in[0].c;
		out->rows = out->out.h * out->out.w;
	}
	uint32_t trains = 0;

	PEFT_TRY(peft_methods_trains(r->methods, &trains));
	const int32_t sizes[] = {
		[PEFT_PARAM_SIZE_WEIGHTS] = (int32_t)r->weights.count,
		[PEFT_PARAM_SIZE_BIAS] = (int32_t)r->bias.count,
		[PEFT_PARAM_SIZE_OUT] = out->out_features,
		/* check_layer_fields bounds the rank (0 without LoRA or DoRA) */
		[PEFT_PARAM_SIZE_RANK_IN] = r->lora_rank * out->in_features,
		[PEFT_PARAM_SIZE_OUT_RANK] = out->out_features * r->lora_rank,
		[PEFT_PARAM_SIZE_IN] = out->in_features,
	};
#define PEFT_PARAM_COUNT(KIND, SIZE, OWNERS)                                                       \
	out->counts[PEFT_PARAM_##KIND] = ((OWNERS) == 0u || (r->methods & (OWNERS)) != 0u)         \
						 ? sizes[PEFT_PARAM_SIZE_##SIZE]                   \
						 : 0;
	PEFT_PARAM_ARRAY_LIST(PEFT_PARAM_COUNT)
#undef PEFT_PARAM_COUNT
	for (int k = 0; k < PEFT_PARAM_KIND_COUNT; k++) {
		out->trainable[k] = (trains & (1u << k)) != 0 && out->counts[k] > 0;
	}
	peft_plan_read_tensor(plan, r->output, &t);
	out->runs_backward = t.needs_grad != 0;
	out->scales_input = out->trainable[PEFT_PARAM_IA3_IN];
	out->needs_input_values = out->trainable[PEFT_PARAM_WEIGHT] ||
				  out->trainable[PEFT_PARAM_LORA_A] || out->scales_input;
	out->streams_input = out->trainable[PEFT_PARAM_LORA_A] &&
			     !out->trainable[PEFT_PARAM_DORA_M] &&
			     !out->trainable[PEFT_PARAM_WEIGHT];
	out->keeps_mask = out->runs_backward && r->activation != PEFT_ACT_NONE;
	out->scales_lin = out->trainable[PEFT_PARAM_GAMMA] || out->trainable[PEFT_PARAM_IA3_L];
	/* plan.rounds_lora: the quantized forward's LoRA layer computes with W0 + s B A
	 * rounded as merge stores it (its input gradient too, so not on the int8 path). */
	out->rounds_lora = (plan->flags & PEFT_PLAN_FLAG_QUANTIZED_FORWARD) != 0 &&
			   (r->methods & PEFT_METHOD_LORA) != 0 &&
			   (r->methods & ~(uint32_t)(PEFT_METHOD_LORA | PEFT_METHOD_BITFIT)) == 0 &&
			   r->weights.scale_count != 1u;
	/* The int8 path's kernel is a fully connected one; IA3's input scaling takes the
	 * float input gradient (its l needs it, not only the layer below). */
	out->int8_input_grad = (plan->flags & PEFT_PLAN_FLAG_INT8_BACKWARD) != 0 &&
			       has_fc_form(r) && out->backward_input[0] &&
			       !out->trainable[PEFT_PARAM_WEIGHT] && !out->scales_input &&
			       !out->rounds_lora;
	out->rounds_weights =
		(plan->flags & PEFT_PLAN_FLAG_QUANTIZED_FORWARD) != 0 &&
		(r->methods & PEFT_METHODS_TRAINING_WEIGHTS) != 0 &&
		(r->methods & ~(uint32_t)(PEFT_METHODS_TRAINING_WEIGHTS | PEFT_METHOD_BITFIT)) == 0;
	return PEFT_OK;
}

static bool optimizer_ok(const peft_optimizer_config *o)
{
	return isfinite(o->lr) && o->lr > 0.0f && o->momentum >= 0.0f && o->momentum < 1.0f &&
	       o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f &&
	       isfinite(o->eps) && o->eps > 0.0f && isfinite(o->weight_decay) &&
	       o->weight_decay >= 0.0f && isfinite(o->clip_norm) && o->clip_norm >= 0.0f &&
	       o->lr_decay_steps < PEFT_LR_DECAY_STEPS_LIMIT;
}

static bool optimizer_compiled(peft_optimizer_kind kind)
{
#ifdef CONFIG_PEFT_OPTIMIZER_SGD
	if (kind == PEFT_OPTIMIZER_SGD) {
		return true;
	}
#endif
#ifdef CONFIG_PEFT_OPTIMIZER_ADAM
	if (kind == PEFT_OPTIMIZER_ADAM) {
		return true;
	}
#endif
	(void)kind;
	return false;
}

static void decode_header(peft_plan *plan, const uint8_t *b)
{
	plan->crc = peft_rd32(b + PEFT_BLOB_HDR_OFF_CRC);
	plan->num_tensors = peft_rd16(b + PEFT_PLAN_HDR_OFF_NUM_TENSORS);
	plan->num_layers = peft_rd16(b + PEFT_PLAN_HDR_OFF_NUM_LAYERS);
	plan->input_tensor = peft_rd16(b + PEFT_PLAN_HDR_OFF_INPUT_TENSOR);
	plan->output_tensor = peft_rd16(b + PEFT_PLAN_HDR_OFF_OUTPUT_TENSOR);
	plan->num_classes = peft_rd16(b + PEFT_PLAN_HDR_OFF_NUM_CLASSES);
	plan->act_cache = (peft_cache_dtype)b[PEFT_PLAN_HDR_OFF_ACT_CACHE];
	plan->optimizer.kind = (peft_optimizer_kind)b[PEFT_PLAN_HDR_OFF_OPTIMIZER];
	plan->seed = peft_rd32(b + PEFT_PLAN_HDR_OFF_SEED);
	plan->optimizer.lr = peft_rdf32(b + PEFT_PLAN_HDR_OFF_LR);
	plan->optimizer.momentum = peft_rdf32(b + PEFT_PLAN_HDR_OFF_MOMENTUM);
	plan->optimizer.beta1 = peft_rdf32(b + PEFT_PLAN_HDR_OFF_BETA1);
	plan->optimizer.beta2 = peft_rdf32(b + PEFT_PLAN_HDR_OFF_BETA2);
	plan->optimizer.eps = peft_rdf32(b + PEFT_PLAN_HDR_OFF_EPS);
	plan->optimizer.weight_decay = peft_rdf32(b + PEFT_PLAN_HDR_OFF_WEIGHT_DECAY);
	plan->optimizer.clip_norm = peft_rdf32(b + PEFT_PLAN_HDR_OFF_CLIP_NORM);
	plan->optimizer.lr_decay_steps = peft_rd32(b + PEFT_PLAN_HDR_OFF_LR_DECAY_STEPS);
	plan->num_buffers = (int32_t)peft_rd32(b + PEFT_PLAN_HDR_OFF_NUM_BUFFERS);
	/* Regions follow one another in arena order (PEFT_TRAIN_*). */
	uint32_t off = 0;
	peft_region *train[PEFT_TRAIN_REGION_COUNT] = {
		[PEFT_TRAIN_PARAMS] = &plan->params,
		[PEFT_TRAIN_PARAM_GRADS] = &plan->param_grads,
		[PEFT_TRAIN_OPTIMIZER_STATE] = &plan->optimizer_state,
		[PEFT_TRAIN_WORK] = &plan->work,
	};

	for (uint32_t k = 0; k < PEFT_TRAIN_REGION_COUNT; k++) {
		train[k]->offset = off;
		train[k]->size = peft_rd32(b + PEFT_PLAN_HDR_OFF_TRAIN_REGION_SIZE + 4u * k);
		off += train[k]->size; /* wrap-around is caught by the layout check */
	}
	plan->train_size = peft_rd32(b + PEFT_PLAN_HDR_OFF_TRAIN_SIZE);
	plan->infer_work.offset = plan->params.size;
	plan->infer_work.size = peft_rd32(b + PEFT_PLAN_HDR_OFF_INFER_WORK_SIZE);
	plan->infer_size = peft_rd32(b + PEFT_PLAN_HDR_OFF_INFER_SIZE);
	plan->trainable_params = peft_rd32(b + PEFT_PLAN_HDR_OFF_TRAINABLE_PARAMS);
	plan->update = (peft_update_mode)peft_rd32(b + PEFT_PLAN_HDR_OFF_UPDATE);
	plan->flags = peft_rd32(b + PEFT_PLAN_HDR_OFF_FLAGS);
	const uint32_t batch = peft_rd32(b + PEFT_PLAN_HDR_OFF_BATCH);

	plan->batch = batch <= PEFT_MAX_BATCH ? (int32_t)batch : 0; /* 0: refused below */
}

peft_status peft_plan_load(peft_plan *plan, const void *blob, size_t blob_len, const void *model,
			   size_t model_len)
{
	if (plan == NULL || blob == NULL || model == NULL) {
		return PEFT_ERR_ARG;
	}
	if ((uintptr_t)blob % 4u != 0 || (uintptr_t)model % 4u != 0) {
		return PEFT_ERR_PLAN_ALIGNMENT;
	}
	static const peft_blob_errors errors = {
		.truncated = PEFT_ERR_PLAN_TRUNCATED,
		.magic = PEFT_ERR_PLAN_MAGIC,
		.version = PEFT_ERR_PLAN_VERSION,
		.length = PEFT_ERR_PLAN_LENGTH,
		.crc = PEFT_ERR_PLAN_CRC,
	};
	const uint8_t *b = blob;

	PEFT_TRY(peft_blob_check(b, blob_len, PEFT_PLAN_MAGIC, PEFT_PLAN_VERSION,
				 PEFT_PLAN_HEADER_SIZE, &errors));
	const uint32_t total = peft_rd32(b + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);
	const uint32_t nt = peft_rd16(b + PEFT_PLAN_HDR_OFF_NUM_TENSORS);
	const uint32_t nl = peft_rd16(b + PEFT_PLAN_HDR_OFF_NUM_LAYERS);
	const uint32_t nb = peft_rd32(b + PEFT_PLAN_HDR_OFF_NUM_BUFFERS);

	if (peft_rd32(b + PEFT_PLAN_HDR_OFF_TENSOR_RECORD_SIZE) != PEFT_PLAN_TENSOR_SIZE ||
	    peft_rd32(b + PEFT_PLAN_HDR_OFF_LAYER_RECORD_SIZE) != PEFT_PLAN_LAYER_SIZE ||
	    peft_rd32(b + PEFT_PLAN_HDR_OFF_BUFFER_RECORD_SIZE) != PEFT_PLAN_BUFFER_SIZE ||
	    (uint64_t)total != PEFT_PLAN_HEADER_SIZE + (uint64_t)nt * PEFT_PLAN_TENSOR_SIZE +
				       (uint64_t)nl * PEFT_PLAN_LAYER_SIZE +
				       (uint64_t)nb * PEFT_PLAN_BUFFER_SIZE) {
		return PEFT_ERR_PLAN_LENGTH;
	}
	if (peft_rd32(b + PEFT_PLAN_HDR_OFF_MODEL_LENGTH) != model_len ||
	    peft_crc32_update(0, model, model_len) != peft_rd32(b + PEFT_PLAN_HDR_OFF_MODEL_CRC)) {
		return PEFT_ERR_PLAN_MODEL_MISMATCH;
	}
	memset(plan, 0, sizeof(*plan));
	plan->blob = b;
	plan->blob_len = total;
	plan->model = model;
	plan->model_len = model_len;
	decode_header(plan, b);

	/* Header fields. */
	if (nl < 1u || nt != nl + 1u || plan->input_tensor != 0 ||
	    plan->output_tensor != (int32_t)nt - 1 || plan->act_cache > PEFT_CACHE_S8 ||
	    plan->optimizer.kind > PEFT_OPTIMIZER_ADAM || !optimizer_ok(&plan->optimizer) ||
	    plan->update > PEFT_UPDATE_LAYER ||
	    (plan->flags & ~(uint32_t)PEFT_PLAN_FLAGS_ALL) != 0 ||
	    (plan->update == PEFT_UPDATE_LAYER && plan->optimizer.clip_norm != 0.0f) ||
	    plan->batch < 1 || (plan->update == PEFT_UPDATE_LAYER && plan->batch != 1)) {
		return PEFT_ERR_PLAN_FIELD;
	}
	/* Tensors. */
	for (int32_t i = 0; i < plan->num_tensors; i++) {
		peft_tensor_rec t;

		peft_plan_read_tensor(plan, i, &t);
		if (t.h <= 0 || t.w <= 0 || t.c <= 0) {
			return PEFT_ERR_PLAN_FIELD;
		}
		/* A batch stacks its samples along the height: that tensor's bound too. */
		if (!peft_shape_ok(t.h, t.w, t.c) ||
		    (int64_t)t.h * plan->batch > PEFT_MAX_TENSOR_ELEMENTS ||
		    !peft_shape_ok(t.h * plan->batch, t.w, t.c)) {
			return PEFT_ERR_PLAN_SHAPE;
		}
		if (!isfinite(t.scale) || t.scale <= 0.0f || t.zero_point < -128 ||
		    t.zero_point > 127 || t.cache_dtype > PEFT_CACHE_S8 || t.needs_grad > 1u ||
		    t.reserved != 0) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	{
		const peft_dims out = tensor_dims(plan, plan->output_tensor);

		if (dims_size(&out) != plan->num_classes) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	/* Layers, and every tensor but the logits is read by a later layer. */
	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_status st = check_layer_fields(plan, k);

		if (st != PEFT_OK) {
			return st;
		}
	}
	for (int32_t t = 0; t < plan->num_tensors - 1; t++) {
		bool used = false;

		for (int32_t k = t; k < plan->num_layers && !used; k++) {
			peft_layer_rec r;

			peft_plan_read_layer(plan, k, &r);
			used = r.input[0] == t || (r.num_inputs == 2u && r.input[1] == t);
		}
		if (!used) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	/* Weight references into the model. */
	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_rec r;
		peft_status st;

		peft_plan_read_layer(plan, k, &r);
		if (r.weights.count == 0) {
			continue;
		}
		st = check_ref(plan, &r.weights, 1u);
		if (st == PEFT_OK && r.bias.count > 0) {
			st = check_ref(plan, &r.bias, 4u);
		}
		if (st != PEFT_OK) {
			return st;
		}
	}
	/* Compiled-in methods and optimizer. */
	if (!optimizer_compiled(plan->optimizer.kind)) {
		return PEFT_ERR_PLAN_METHOD_NOT_COMPILED;
	}
#ifndef CONFIG_PEFT_INT8_BACKWARD
	if ((plan->flags & PEFT_PLAN_FLAG_INT8_BACKWARD) != 0) {
		return PEFT_ERR_PLAN_INT8_NOT_COMPILED;
	}
#endif
	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_rec r;

		uint32_t trains;

		peft_plan_read_layer(plan, k, &r);
		PEFT_TRY(peft_methods_trains(r.methods, &trains));
	}
	/* Which tensors carry a gradient: checked in order, so each layer's inputs
	 * are already known to be right (the input never needs one). */
	uint64_t trainable = 0;
	{
		peft_tensor_rec t0;

		peft_plan_read_tensor(plan, 0, &t0);
		if (t0.needs_grad != 0) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_info L;
		peft_tensor_rec t;
		bool any = false;
		peft_status st = peft_plan_layer_info(plan, k, &L);

		if (st != PEFT_OK) {
			return st;
		}
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (L.trainable[p]) {
				any = true;
				trainable += (uint64_t)L.counts[p];
			}
		}
		if (L.rec.methods != 0 && !any) {
			return PEFT_ERR_PLAN_FIELD; /* e.g. BitFit on a layer without bias */
		}
		peft_plan_read_tensor(plan, L.rec.output, &t);
		if ((t.needs_grad != 0) != (any || L.backward_input[0] || L.backward_input[1])) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	{
		peft_tensor_rec t;

		peft_plan_read_tensor(plan, plan->output_tensor, &t);
		if (trainable == 0 || t.needs_grad == 0 || trainable != plan->trainable_params) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	return peft_plan_check_layout(plan);
}

peft_status peft_plan_arena_size(const peft_plan *plan, peft_mode mode, size_t *bytes)
{
	if (plan == NULL || bytes == NULL || (mode != PEFT_MODE_TRAIN && mode != PEFT_MODE_INFER)) {
		return PEFT_ERR_ARG;
	}
	*bytes = mode == PEFT_MODE_TRAIN ? plan->train_size : plan->infer_size;
	return PEFT_OK;
}

peft_status peft_plan_arena_breakdown(const peft_plan *plan, peft_arena_breakdown *out)
{
	if (plan == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	peft_work_peak peak;
	const peft_status st = peft_plan_work_peak(plan, &peak);

	if (st != PEFT_OK) {
		return st;
	}
	out->cached_activations = peak.kept;
	out->gradients = (size_t)plan->param_grads.size + peak.grads;
	out->parameters = plan->params.size;
	out->optimizer_state = plan->optimizer_state.size;
	out->scratch = (size_t)plan->work.size - peak.kept - peak.grads;
	out->total = out->cached_activations + out->gradients + out->parameters +
		     out->optimizer_state + out->scratch;
	return PEFT_OK;
}

peft_status peft_plan_input_dims(const peft_plan *plan, peft_dims *dims)
{
	if (plan == NULL || dims == NULL || plan->blob == NULL) {
		return PEFT_ERR_ARG;
	}
	*dims = tensor_dims(plan, plan->input_tensor);
	return PEFT_OK;
}

peft_status peft_plan_input_quant(const peft_plan *plan, float *scale, int32_t *zero_point)
{
	peft_tensor_rec t;

	if (plan == NULL || scale == NULL || zero_point == NULL || plan->blob == NULL) {
		return PEFT_ERR_ARG;
	}
	peft_plan_read_tensor(plan, plan->input_tensor, &t);
	*scale = t.scale;
	*zero_point = t.zero_point;
	return PEFT_OK;
}

peft_status peft_plan_num_classes(const peft_plan *plan, int32_t *n)
{
	if (plan == NULL || n == NULL) {
		return PEFT_ERR_ARG;
	}
	*n = plan->num_classes;
	return PEFT_OK;
}

peft_status peft_plan_batch_capacity(const peft_plan *plan, int32_t *n)
{
	if (plan == NULL || n == NULL) {
		return PEFT_ERR_ARG;
	}
	*n = plan->batch;
	return PEFT_OK;
}

peft_status peft_plan_trainable_params(const peft_plan *plan, size_t *count)
{
	if (plan == NULL || count == NULL) {
		return PEFT_ERR_ARG;
	}
	*count = plan->trainable_params;
	return PEFT_OK;
}
