/* Plan blob reader: header, CRC, field and model-reference checks, queries.
 * The arena layout check is in peft_plan_layout.c. Format: docs/formats.md. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../methods/peft_method.h"
#include "peft/peft_crc32.h"
#include "peft/peft_plan.h"
#include "peft_plan_internal.h"

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static float rdf(const uint8_t *p)
{
	float v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void rd_ref(const uint8_t *p, peft_ref_rec *r)
{
	r->offset = rd32(p);
	r->count = rd32(p + 4);
	r->scale_offset = rd32(p + 8);
	r->scale_count = rd32(p + 12);
}

void peft_plan_read_tensor(const peft_plan *plan, int32_t i, peft_tensor_rec *out)
{
	const uint8_t *p =
		plan->blob + PEFT_PLAN_HEADER_SIZE + (size_t)i * PEFT_PLAN_TENSOR_SIZE;

	out->h = (int32_t)rd32(p);
	out->w = (int32_t)rd32(p + 4);
	out->c = (int32_t)rd32(p + 8);
	out->scale = rdf(p + 12);
	out->zero_point = (int32_t)rd32(p + 16);
	out->cache_offset = rd32(p + 20);
	out->fwd_offset = rd32(p + 24);
	out->grad_offset = rd32(p + 28);
	out->infer_offset = rd32(p + 32);
	out->cache_dtype = p[36];
	out->needs_grad = p[37];
	out->reserved = rd16(p + 38);
}

void peft_plan_read_layer(const peft_plan *plan, int32_t i, peft_layer_rec *out)
{
	const uint8_t *p = plan->blob + PEFT_PLAN_HEADER_SIZE +
			   (size_t)plan->num_tensors * PEFT_PLAN_TENSOR_SIZE +
			   (size_t)i * PEFT_PLAN_LAYER_SIZE;

	out->op = p[0];
	out->activation = p[1];
	out->methods = rd16(p + 2);
	out->graph_layer = rd16(p + 4);
	out->num_inputs = rd16(p + 6);
	out->input[0] = rd16(p + 8);
	out->input[1] = rd16(p + 10);
	out->output = rd16(p + 12);
	out->lora_rank = rd16(p + 14);
	out->lora_alpha = rdf(p + 16);
	out->kernel_h = (int32_t)rd32(p + 20);
	out->kernel_w = (int32_t)rd32(p + 24);
	out->stride_h = (int32_t)rd32(p + 28);
	out->stride_w = (int32_t)rd32(p + 32);
	out->pad_top = (int32_t)rd32(p + 36);
	out->pad_left = (int32_t)rd32(p + 40);
	rd_ref(p + 44, &out->weights);
	rd_ref(p + 60, &out->bias);
	out->reserved = rd32(p + 76);
	for (int k = 0; k < PEFT_PARAM_KIND_COUNT; k++) {
		out->param[k] = rd32(p + 80 + 4 * k);
		out->grad[k] = rd32(p + 104 + 4 * k);
		out->opt_m[k] = rd32(p + 128 + 4 * k);
		out->opt_v[k] = rd32(p + 152 + 4 * k);
	}
	out->cache_z = rd32(p + 176);
	out->cache_u = rd32(p + 180);
	for (int k = 0; k < PEFT_S_TRAIN_COUNT; k++) {
		out->scratch_train[k] = rd32(p + 184 + 4 * k);
	}
	for (int k = 0; k < PEFT_S_INFER_COUNT; k++) {
		out->scratch_infer[k] = rd32(p + 204 + 4 * k);
	}
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
static bool product_is(uint32_t count, int32_t a, int32_t b, int32_t c, int32_t d)
{
	const int32_t factors[4] = {a, b, c, d};
	int64_t p = 1;

	for (int i = 0; i < 4; i++) {
		p *= factors[i];
		if (p > (int64_t)count) {
			return false;
		}
	}
	return p == (int64_t)count;
}

static bool dims_equal(const peft_dims *a, const peft_dims *b)
{
	return a->h == b->h && a->w == b->w && a->c == b->c;
}

/* out == (in + pad_before + pad_after - kernel) / stride + 1 for some
 * 0 <= pad_after < kernel + stride (the kernels' geometry rule). */
static bool axis_ok(int32_t in, int32_t out, int32_t kernel, int32_t stride, int32_t pad)
{
	if (kernel <= 0 || stride <= 0 || pad < 0 || kernel > 1024 || stride > 1024 ||
	    pad >= kernel + stride) {
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

/* Everything that needs only the record and its tensors' shapes. */
static peft_status check_layer_fields(const peft_plan *plan, int32_t k)
{
	peft_layer_rec r;

	peft_plan_read_layer(plan, k, &r);
	if (r.op < PEFT_OP_CONV_2D || r.op > PEFT_OP_RESHAPE || r.activation > PEFT_ACT_RELU6 ||
	    (r.methods & ~(uint32_t)PEFT_METHOD_ALL) != 0 || r.reserved != 0 ||
	    r.output != (uint32_t)k + 1u) {
		return PEFT_ERR_PLAN_FIELD;
	}
	const bool is_add = r.op == PEFT_OP_ADD;
	const bool linear = r.op == PEFT_OP_CONV_2D || r.op == PEFT_OP_DEPTHWISE_CONV_2D ||
			    r.op == PEFT_OP_FULLY_CONNECTED;

	if (r.num_inputs != (is_add ? 2u : 1u) || r.input[0] > k ||
	    (is_add ? r.input[1] > k : r.input[1] != PEFT_NO_INPUT)) {
		return PEFT_ERR_PLAN_FIELD;
	}
	if (r.methods != 0 && !linear) {
		return PEFT_ERR_PLAN_FIELD;
	}
	const peft_dims in = tensor_dims(plan, r.input[0]);
	const peft_dims out = tensor_dims(plan, r.output);
	const int64_t in_size = dims_size(&in);
	const int64_t out_size = dims_size(&out);

	if (r.methods & PEFT_METHOD_LORA) {
		const bool pointwise = r.op == PEFT_OP_CONV_2D && r.kernel_h == 1 &&
				       r.kernel_w == 1 && r.stride_h == 1 && r.stride_w == 1 &&
				       r.pad_top == 0 && r.pad_left == 0;

		if (!(pointwise || r.op == PEFT_OP_FULLY_CONNECTED) || r.lora_rank < 1 ||
		    r.lora_rank > PEFT_MAX_LORA_RANK || !isfinite(r.lora_alpha) ||
		    r.lora_alpha <= 0.0f) {
			return PEFT_ERR_PLAN_FIELD;
		}
	} else if (r.lora_rank != 0 || r.lora_alpha != 0.0f) {
		return PEFT_ERR_PLAN_FIELD;
	}
	if (!linear) {
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
	const bool geometry = r.op == PEFT_OP_CONV_2D || r.op == PEFT_OP_DEPTHWISE_CONV_2D ||
			      r.op == PEFT_OP_AVERAGE_POOL_2D;

	if (geometry && (!axis_ok(in.h, out.h, r.kernel_h, r.stride_h, r.pad_top) ||
			 !axis_ok(in.w, out.w, r.kernel_w, r.stride_w, r.pad_left))) {
		return PEFT_ERR_PLAN_FIELD;
	}
	switch (r.op) {
	case PEFT_OP_CONV_2D:
		if (!product_is(r.weights.count, out.c, r.kernel_h, r.kernel_w, in.c)) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	case PEFT_OP_DEPTHWISE_CONV_2D:
		if (in.c != out.c || !product_is(r.weights.count, r.kernel_h, r.kernel_w, in.c, 1)) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	case PEFT_OP_FULLY_CONNECTED: {
		const uint32_t in_features = r.weights.count / (uint32_t)out.c;

		if (r.weights.count % (uint32_t)out.c != 0 || in_features == 0 ||
		    in_size % in_features != 0 ||
		    (in_size / in_features) * out.c != out_size) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	}
	case PEFT_OP_ADD: {
		const peft_dims in1 = tensor_dims(plan, r.input[1]);

		if (!dims_equal(&in, &out) || !dims_equal(&in1, &out)) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	}
	case PEFT_OP_MEAN:
		if (out.h != 1 || out.w != 1 || out.c != in.c) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	case PEFT_OP_AVERAGE_POOL_2D:
		if (in.c != out.c) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	case PEFT_OP_PAD:
		if (in.c != out.c || r.pad_top < 0 || r.pad_left < 0 ||
		    (int64_t)out.h < (int64_t)in.h + r.pad_top ||
		    (int64_t)out.w < (int64_t)in.w + r.pad_left) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
	default: /* RESHAPE */
		if (in_size != out_size) {
			return PEFT_ERR_PLAN_FIELD;
		}
		break;
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

	for (uint16_t bit = 1; bit <= PEFT_METHOD_SPARSE; bit = (uint16_t)(bit << 1)) {
		if (r->methods & bit) {
			const peft_method *m = peft_method_find(bit);

			if (m == NULL) {
				return PEFT_ERR_PLAN_METHOD_NOT_COMPILED;
			}
			trains |= m->trains;
		}
	}
	const int32_t rank = (r->methods & PEFT_METHOD_LORA) ? r->lora_rank : 0;

	out->counts[PEFT_PARAM_WEIGHT] = (int32_t)r->weights.count;
	out->counts[PEFT_PARAM_BIAS] = (int32_t)r->bias.count;
	out->counts[PEFT_PARAM_GAMMA] = (r->methods & PEFT_METHOD_SCALE_SHIFT) ? out->out_features : 0;
	out->counts[PEFT_PARAM_BETA] = out->counts[PEFT_PARAM_GAMMA];
	out->counts[PEFT_PARAM_LORA_A] = rank * out->in_features;
	out->counts[PEFT_PARAM_LORA_B] = out->out_features * rank;
	for (int k = 0; k < PEFT_PARAM_KIND_COUNT; k++) {
		out->trainable[k] = (trains & (1u << k)) != 0 && out->counts[k] > 0;
		out->present[k] = out->trainable[k];
	}
	/* Frozen biases are dequantised into the parameters too. */
	out->present[PEFT_PARAM_BIAS] = r->bias.count > 0;
	peft_plan_read_tensor(plan, r->output, &t);
	out->runs_backward = t.needs_grad != 0;
	out->needs_input_values = out->trainable[PEFT_PARAM_WEIGHT] || out->trainable[PEFT_PARAM_LORA_A];
	out->needs_output_values = out->runs_backward && r->activation != PEFT_ACT_NONE;
	return PEFT_OK;
}

static bool optimizer_ok(const peft_optimizer_config *o)
{
	return isfinite(o->lr) && o->lr > 0.0f && o->momentum >= 0.0f && o->momentum < 1.0f &&
	       o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f &&
	       isfinite(o->eps) && o->eps > 0.0f && isfinite(o->weight_decay) &&
	       o->weight_decay >= 0.0f && isfinite(o->clip_norm) && o->clip_norm >= 0.0f;
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
	plan->crc = rd32(b + 12);
	plan->num_tensors = rd16(b + 24);
	plan->num_layers = rd16(b + 26);
	plan->input_tensor = rd16(b + 28);
	plan->output_tensor = rd16(b + 30);
	plan->num_classes = rd16(b + 32);
	plan->act_cache = (peft_cache_dtype)b[34];
	plan->optimizer.kind = (peft_optimizer_kind)b[35];
	plan->seed = rd32(b + 36);
	plan->optimizer.lr = rdf(b + 40);
	plan->optimizer.momentum = rdf(b + 44);
	plan->optimizer.beta1 = rdf(b + 48);
	plan->optimizer.beta2 = rdf(b + 52);
	plan->optimizer.eps = rdf(b + 56);
	plan->optimizer.weight_decay = rdf(b + 60);
	plan->optimizer.clip_norm = rdf(b + 64);
	plan->slot_size = rd32(b + 68);
	/* Regions follow one another in the order of docs/formats.md. */
	uint32_t off = 0;
	peft_region *train[] = {&plan->params,         &plan->param_grads, &plan->optimizer_state,
				&plan->cache,          &plan->slots,       &plan->scratch};

	for (int k = 0; k < 6; k++) {
		train[k]->offset = off;
		train[k]->size = rd32(b + 72 + 4 * k);
		off += train[k]->size; /* wrap-around is caught by the layout check */
	}
	plan->train_size = rd32(b + 96);
	plan->infer_slots.offset = plan->params.size;
	plan->infer_slots.size = rd32(b + 100);
	plan->infer_scratch.offset = plan->params.size + plan->infer_slots.size;
	plan->infer_scratch.size = rd32(b + 104);
	plan->infer_size = rd32(b + 108);
	plan->probs_offset = rd32(b + 112);
	plan->trainable_params = rd32(b + 116);
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
	const uint8_t *b = blob;

	if (blob_len < 16u) {
		return PEFT_ERR_PLAN_TRUNCATED;
	}
	if (rd32(b) != PEFT_PLAN_MAGIC) {
		return PEFT_ERR_PLAN_MAGIC;
	}
	if (rd16(b + 4) != PEFT_PLAN_VERSION) {
		return PEFT_ERR_PLAN_VERSION;
	}
	if (rd16(b + 6) != PEFT_PLAN_HEADER_SIZE) {
		return PEFT_ERR_PLAN_LENGTH;
	}
	const uint32_t total = rd32(b + 8);

	if (blob_len < PEFT_PLAN_HEADER_SIZE || total > blob_len) {
		return PEFT_ERR_PLAN_TRUNCATED;
	}
	if (total < PEFT_PLAN_HEADER_SIZE) {
		return PEFT_ERR_PLAN_LENGTH;
	}
	if (peft_crc32_update(0, b + 16, total - 16u) != rd32(b + 12)) {
		return PEFT_ERR_PLAN_CRC;
	}
	const uint32_t nt = rd16(b + 24);
	const uint32_t nl = rd16(b + 26);

	if (rd32(b + 120) != PEFT_PLAN_TENSOR_SIZE || rd32(b + 124) != PEFT_PLAN_LAYER_SIZE ||
	    (uint64_t)total != PEFT_PLAN_HEADER_SIZE + (uint64_t)nt * PEFT_PLAN_TENSOR_SIZE +
				       (uint64_t)nl * PEFT_PLAN_LAYER_SIZE) {
		return PEFT_ERR_PLAN_LENGTH;
	}
	if (rd32(b + 20) != model_len || peft_crc32_update(0, model, model_len) != rd32(b + 16)) {
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
	    plan->optimizer.kind > PEFT_OPTIMIZER_ADAM || !optimizer_ok(&plan->optimizer)) {
		return PEFT_ERR_PLAN_FIELD;
	}
	/* Tensors. */
	for (int32_t i = 0; i < plan->num_tensors; i++) {
		peft_tensor_rec t;

		peft_plan_read_tensor(plan, i, &t);
		if (t.h <= 0 || t.w <= 0 || t.c <= 0) {
			return PEFT_ERR_PLAN_FIELD;
		}
		if (!peft_shape_ok(t.h, t.w, t.c)) {
			return PEFT_ERR_PLAN_SHAPE;
		}
		if (!isfinite(t.scale) ||
		    t.scale <= 0.0f || t.zero_point < -128 || t.zero_point > 127 ||
		    t.cache_dtype > PEFT_CACHE_S8 || t.needs_grad > 1u || t.reserved != 0) {
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
	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_rec r;

		peft_plan_read_layer(plan, k, &r);
		for (uint16_t bit = 1; bit <= PEFT_METHOD_SPARSE; bit = (uint16_t)(bit << 1)) {
			if ((r.methods & bit) && peft_method_find(bit) == NULL) {
				return PEFT_ERR_PLAN_METHOD_NOT_COMPILED;
			}
		}
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
	out->cached_activations = plan->cache.size;
	out->gradients = (size_t)plan->param_grads.size + plan->slots.size;
	out->parameters = plan->params.size;
	out->optimizer_state = plan->optimizer_state.size;
	out->scratch = plan->scratch.size;
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

peft_status peft_plan_trainable_params(const peft_plan *plan, size_t *count)
{
	if (plan == NULL || count == NULL) {
		return PEFT_ERR_ARG;
	}
	*count = plan->trainable_params;
	return PEFT_OK;
}
