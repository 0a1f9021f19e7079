/* The arena layout, recomputed from the plan's layers and compared with every
 * offset and size the plan stores. scripts/micropeft/planning/plan.py (_layout,
 * _buffers, _place) is the same algorithm; docs/formats.md describes it.
 *
 * Parameters, gradients and optimizer state are packed in layer order. Every
 * other buffer has a record in the buffer table with its kind, owner, size and
 * live range over the schedule (forward of layer k at step k, the loss at step
 * L, backward of layer k at step 2L - k); its offset is the greedy-by-size
 * first fit of TFLM's GreedyMemoryPlanner. Nothing is stored: the expected
 * table is derived record by record in table order, and each record's offset
 * is recomputed from the (themselves checked) offsets of the records placed
 * before it, so the check needs no memory beyond the stack. */
#include <stdbool.h>
#include <stdint.h>

#include "peft_plan_internal.h"
#include "../common/peft_try.h"

#define EXPECT(stored, value)                                                                      \
	do {                                                                                       \
		if ((uint64_t)(stored) != (uint64_t)(value)) {                                     \
			return PEFT_ERR_PLAN_ARENA_OFFSET;                                         \
		}                                                                                  \
	} while (0)

static uint64_t al(uint64_t n)
{
	return (n + PEFT_ALIGN - 1u) & ~(uint64_t)(PEFT_ALIGN - 1u);
}

static int32_t tensor_size(const peft_plan *plan, int32_t t)
{
	peft_tensor_rec r;

	peft_plan_read_tensor(plan, t, &r);
	return peft_tensor_elements(&r);
}

static int32_t bwd_step(const peft_plan *plan, int32_t k)
{
	return 2 * plan->num_layers - k;
}

/* The last layer that reads tensor t in the forward (num_layers, the loss,
 * for the logits). */
static int32_t last_forward(const peft_plan *plan, int32_t t)
{
	int32_t last = plan->num_layers;

	for (int32_t k = t > 0 ? t - 1 : 0; k < plan->num_layers; k++) {
		peft_layer_rec r;

		peft_plan_read_layer(plan, k, &r);
		if (r.input[0] == t || (r.num_inputs == 2u && r.input[1] == t)) {
			last = k;
		}
	}
	return last;
}

/* The last backward step that reads tensor t's kept values (a consumer's
 * weight / LoRA A gradient), or -1 when backward never reads them. */
static peft_status last_keep(const peft_plan *plan, int32_t t, int32_t *step)
{
	*step = -1;
	for (int32_t k = t > 0 ? t - 1 : 0; k < plan->num_layers; k++) {
		peft_layer_info L;

		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		if (L.rec.input[0] == t && L.needs_input_values) {
			*step = bwd_step(plan, k);
			return PEFT_OK;
		}
	}
	return PEFT_OK;
}

static peft_status check_params_grads_opt(const peft_plan *plan, uint64_t *off)
{
	peft_layer_info L;
	const int32_t states = plan->optimizer.kind == PEFT_OPTIMIZER_ADAM ? 2
			       : plan->optimizer.momentum != 0.0f          ? 1
									   : 0;
	const bool batch = plan->update == PEFT_UPDATE_BATCH;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (L.trainable[p]) {
				EXPECT(L.rec.param[p], *off);
				*off += al(4u * (uint64_t)L.counts[p]);
			} else {
				EXPECT(L.rec.param[p], PEFT_NONE);
			}
		}
	}
	EXPECT(plan->params.size, *off);
	const uint64_t grads = *off;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (L.trainable[p] && batch) {
				EXPECT(L.rec.grad[p], *off);
				*off += al(4u * (uint64_t)L.counts[p]);
			} else {
				EXPECT(L.rec.grad[p], PEFT_NONE);
			}
		}
	}
	EXPECT(plan->param_grads.size, *off - grads);
	const uint64_t opt = *off;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (L.trainable[p] && states >= 1) {
				EXPECT(L.rec.opt_m[p], *off);
				*off += al(4u * (uint64_t)L.counts[p]);
			} else {
				EXPECT(L.rec.opt_m[p], PEFT_NONE);
			}
			if (L.trainable[p] && states >= 2) {
				EXPECT(L.rec.opt_v[p], *off);
				*off += al(4u * (uint64_t)L.counts[p]);
			} else {
				EXPECT(L.rec.opt_v[p], PEFT_NONE);
			}
		}
	}
	EXPECT(plan->optimizer_state.size, *off - opt);
	return PEFT_OK;
}

/* A buffer the layout needs (size 0: none). */
typedef struct {
	uint64_t size;
	int32_t first;
	int32_t last;
} want;

static want live(uint64_t bytes, int32_t first, int32_t last)
{
	return (want){al(bytes), first, last};
}

/* The buffer of a tensor-owned kind for tensor t. */
static peft_status tensor_buffer(const peft_plan *plan, int arena, int kind, int32_t t, want *w)
{
	peft_tensor_rec r;
	const bool s8 = plan->act_cache == PEFT_CACHE_S8;
	const int64_t n = (int64_t)tensor_size(plan, t) * plan->batch;
	const int32_t producer = t > 0 ? t - 1 : 0;
	const int32_t fwd_last = last_forward(plan, t);
	int32_t keep;

	*w = (want){0, 0, 0};
	peft_plan_read_tensor(plan, t, &r);
	PEFT_TRY(last_keep(plan, t, &keep));
	if (kind == PEFT_BUF_VALUE) {
		const bool kept_here = arena == PEFT_ARENA_TRAIN && !s8 && keep > fwd_last;

		*w = live(4u * (uint64_t)n, producer, kept_here ? keep : fwd_last);
	} else if (arena == PEFT_ARENA_TRAIN && kind == PEFT_BUF_KEEP && s8 && keep >= 0) {
		*w = live((uint64_t)n, producer, keep);
	} else if (arena == PEFT_ARENA_TRAIN && kind == PEFT_BUF_GRAD && r.needs_grad) {
		*w = live(4u * (uint64_t)n, bwd_step(plan, fwd_last), bwd_step(plan, t - 1));
	}
	return PEFT_OK;
}

/* The buffer of a layer-owned kind for layer k (part: parameter kind). */
/* FWD_QW / BWD_QW: the rounded trained weights (a LoRA layer: one merged row)
 * in float, then one scale per output channel. */
static uint64_t rounded_weights_bytes(const peft_layer_info *L)
{
	const uint64_t weights = L->rounds_lora ? (uint64_t)L->in_features : L->rec.weights.count;

	return 4u * (weights + (uint64_t)L->out_features);
}

static peft_status layer_buffer(const peft_plan *plan, int arena, int kind, int32_t k, int32_t part,
				want *w)
{
	peft_layer_info L;
	const bool s8 = plan->act_cache == PEFT_CACHE_S8;
	const bool train = arena == PEFT_ARENA_TRAIN;

	*w = (want){0, 0, 0};
	PEFT_TRY(peft_plan_layer_info(plan, k, &L));
	peft_layer_info_stack(&L, plan->batch); /* per-sample buffers hold the batch */
	const bool ss = L.scales_lin;
	const bool lora = L.trainable[PEFT_PARAM_LORA_A]; /* LoRA or DoRA */
	const bool dora = L.trainable[PEFT_PARAM_DORA_M];
	const uint64_t out = (uint64_t)L.out_size;
	const uint64_t u = 4u * (uint64_t)L.rows * L.rec.lora_rank;
	const int32_t b = bwd_step(plan, k);

	if (part != 0 && kind != PEFT_BUF_PARAM_GRAD) {
		return PEFT_OK;
	}
	switch (kind) {
	case PEFT_BUF_MASK:
		if (train && L.keeps_mask) {
			*w = live((out + 7u) / 8u, k, b);
		}
		break;
	case PEFT_BUF_KEEP_LIN:
		if (train && ss) {
			*w = live((s8 ? 1u : 4u) * out, k, b);
		}
		break;
	case PEFT_BUF_KEEP_U:
		if (train && lora) {
			*w = live(u, k, b);
		}
		break;
	case PEFT_BUF_FWD_BIAS:
		if (L.rec.bias.count > 0 && !L.trainable[PEFT_PARAM_BIAS]) {
			*w = live(4u * (uint64_t)L.out_features, k, k);
		}
		break;
	case PEFT_BUF_FWD_LIN:
		if (ss && (!train || s8)) {
			*w = live(4u * out, k, k);
		}
		break;
	case PEFT_BUF_FWD_LORA_OUT: /* DoRA's branch; LoRA adds B u into the output */
		if (dora) {
			*w = live(4u * out, k, k);
		}
		break;
	case PEFT_BUF_FWD_U:
		if (lora && !train) {
			*w = live(u, k, k);
		}
		break;
	case PEFT_BUF_BWD_IN:
		if (train && s8 && L.needs_input_values) {
			const int32_t rows = L.rows < PEFT_BWD_IN_ROWS ? L.rows : PEFT_BWD_IN_ROWS;

			*w = live(4u * (L.streams_input ? (uint64_t)rows * L.in_features
							: (uint64_t)L.in_size[0]),
				  b, b);
		}
		break;
	case PEFT_BUF_BWD_GLIN:
		if (train && (ss || dora)) {
			*w = live(4u * out, b, b);
		}
		break;
	case PEFT_BUF_BWD_DU:
		if (train && lora) {
			*w = live(u, b, b);
		}
		break;
	case PEFT_BUF_PARAM_GRAD:
		if (train && plan->update == PEFT_UPDATE_LAYER && L.trainable[part]) {
			*w = live(4u * (uint64_t)L.counts[part], b, b);
		}
		break;
	case PEFT_BUF_BWD_S8S8:
		if (train && L.int8_input_grad) {
			const peft_fc_params fp = {L.rows, L.in_features, L.out_features};

			*w = live((uint64_t)peft_fc_bwd_input_s8s8_get_buffer_size(&fp), b, b);
		}
		break;
	case PEFT_BUF_FWD_XS:
		if (L.scales_input) {
			*w = live(4u * (uint64_t)L.in_size[0], k, k);
		}
		break;
	case PEFT_BUF_BWD_GX:
		if (train && L.scales_input) {
			*w = live(4u * (uint64_t)L.in_size[0], b, b);
		}
		break;
	case PEFT_BUF_FWD_QW:
		if (L.rounds_weights || L.rounds_lora) {
			*w = live(rounded_weights_bytes(&L), k, k);
		}
		break;
	case PEFT_BUF_BWD_QW:
		if (train && (L.rounds_weights || L.rounds_lora) && L.backward_input[0]) {
			*w = live(rounded_weights_bytes(&L), b, b);
		}
		break;
	case PEFT_BUF_DORA_NORM: /* from the parameters alone: kept while they stay */
		if (dora) {
			*w = live(4u * (uint64_t)L.out_features, 0, 2 * plan->num_layers);
		}
		break;
	default:
		break;
	}
	return PEFT_OK;
}

static bool tensor_owned(int kind)
{
	return kind == PEFT_BUF_VALUE || kind == PEFT_BUF_KEEP || kind == PEFT_BUF_GRAD;
}

/* Every record has a known kind and clean reserved fields. */
static peft_status check_records(const peft_plan *plan)
{
	for (int32_t i = 0; i < plan->num_buffers; i++) {
		peft_buffer_rec b;

		peft_plan_read_buffer(plan, i, &b);
		if (b.kind < PEFT_BUF_VALUE || b.kind > PEFT_BUF_KIND_LAST) {
			return PEFT_ERR_PLAN_BUFFER_KIND;
		}
	}
	for (int32_t i = 0; i < plan->num_buffers; i++) {
		peft_buffer_rec b;

		peft_plan_read_buffer(plan, i, &b);
		if (b.arena > PEFT_ARENA_INFER || b.reserved != 0 || b.reserved2 != 0 ||
		    b.part >= PEFT_PARAM_KIND_COUNT) {
			return PEFT_ERR_PLAN_FIELD;
		}
	}
	return PEFT_OK;
}

/* The table holds exactly the buffers the layout needs, in table order. */
static peft_status check_table(const peft_plan *plan)
{
	int32_t i = 0;

	for (int arena = PEFT_ARENA_TRAIN; arena <= PEFT_ARENA_INFER; arena++) {
		for (int kind = PEFT_BUF_VALUE; kind <= PEFT_BUF_KIND_LAST; kind++) {
			const bool by_tensor = tensor_owned(kind);
			const int32_t owners = kind == PEFT_BUF_PROBS ? 1
					       : by_tensor            ? plan->num_tensors
								      : plan->num_layers;
			const int32_t parts =
				kind == PEFT_BUF_PARAM_GRAD ? PEFT_PARAM_KIND_COUNT : 1;

			for (int32_t owner = 0; owner < owners; owner++) {
				for (int32_t part = 0; part < parts; part++) {
					want w = {0, 0, 0};
					peft_buffer_rec b;

					if (kind == PEFT_BUF_PROBS) {
						if (arena == PEFT_ARENA_TRAIN) {
							w = live(4u * (uint64_t)plan->num_classes *
									 (uint64_t)plan->batch,
								 plan->num_layers,
								 plan->num_layers);
						}
					} else if (by_tensor) {
						PEFT_TRY(tensor_buffer(plan, arena, kind, owner,
								       &w));
					} else {
						PEFT_TRY(layer_buffer(plan, arena, kind, owner,
								      part, &w));
					}
					if (w.size == 0) {
						continue;
					}
					if (i >= plan->num_buffers) {
						return PEFT_ERR_PLAN_ARENA_OFFSET;
					}
					peft_plan_read_buffer(plan, i++, &b);
					EXPECT(b.arena, arena);
					EXPECT(b.kind, kind);
					EXPECT(b.owner, owner);
					EXPECT(b.part, part);
					EXPECT(b.size, w.size);
					EXPECT(b.first, w.first);
					EXPECT(b.last, w.last);
				}
			}
		}
	}
	EXPECT(plan->num_buffers, i);
	return PEFT_OK;
}

static uint32_t arena_base(const peft_plan *plan, int arena)
{
	return arena == PEFT_ARENA_TRAIN ? plan->work.offset : plan->infer_work.offset;
}

/* Record i's offset as the greedy planner places it: the records placed before
 * it are those larger, or as large and earlier in the table. */
static int64_t first_fit(const peft_plan *plan, int32_t i, const peft_buffer_rec *me)
{
	const int64_t base = arena_base(plan, me->arena);
	int64_t at = 0;

	for (;;) {
		int64_t next = at;

		for (int32_t j = 0; j < plan->num_buffers; j++) {
			peft_buffer_rec o;

			peft_plan_read_buffer(plan, j, &o);
			const bool before = o.size > me->size || (o.size == me->size && j < i);

			if (j == i || o.arena != me->arena || !before || o.first > me->last ||
			    me->first > o.last) {
				continue;
			}
			const int64_t start = (int64_t)o.offset - base;
			const int64_t end = start + (int64_t)o.size;

			if (start < at + (int64_t)me->size && at < end && end > next) {
				next = end;
			}
		}
		if (next == at) {
			return at;
		}
		at = next;
	}
}

static peft_status check_offsets(const peft_plan *plan)
{
	uint64_t top[2] = {0, 0};

	for (int32_t i = 0; i < plan->num_buffers; i++) {
		peft_buffer_rec b;

		peft_plan_read_buffer(plan, i, &b);
		const int64_t at = first_fit(plan, i, &b);

		EXPECT(b.offset, (uint64_t)at + arena_base(plan, b.arena));
		if ((uint64_t)at + b.size > top[b.arena]) {
			top[b.arena] = (uint64_t)at + b.size;
		}
	}
	EXPECT(plan->work.size, top[PEFT_ARENA_TRAIN]);
	EXPECT(plan->infer_work.size, top[PEFT_ARENA_INFER]);
	return PEFT_OK;
}

/* Each tensor's keep dtype says whether backward reads its values. */
static peft_status check_tensors(const peft_plan *plan)
{
	for (int32_t t = 0; t < plan->num_tensors; t++) {
		peft_tensor_rec r;
		int32_t keep;

		PEFT_TRY(last_keep(plan, t, &keep));
		peft_plan_read_tensor(plan, t, &r);
		EXPECT(r.cache_dtype, keep >= 0 ? (uint32_t)plan->act_cache : 0u);
	}
	return PEFT_OK;
}

peft_status peft_plan_check_layout(const peft_plan *plan)
{
	uint64_t off = 0;

	PEFT_TRY(check_params_grads_opt(plan, &off));
	PEFT_TRY(check_tensors(plan));
	PEFT_TRY(check_records(plan));
	PEFT_TRY(check_table(plan));
	PEFT_TRY(check_offsets(plan));
	EXPECT(plan->work.offset, off);
	EXPECT(plan->train_size, off + plan->work.size);
	EXPECT(plan->infer_size, (uint64_t)plan->params.size + plan->infer_work.size);
	return PEFT_OK;
}

peft_status peft_plan_work_peak(const peft_plan *plan, peft_work_peak *out)
{
	const int32_t steps = 2 * plan->num_layers + 1;
	const uint32_t base = plan->work.offset;

	out->step = 0;
	out->kept = 0;
	out->grads = 0;
	for (int32_t s = 0; s < steps; s++) {
		uint32_t top = 0;

		for (int32_t i = 0; i < plan->num_buffers; i++) {
			peft_buffer_rec b;

			peft_plan_read_buffer(plan, i, &b);
			if (b.arena == PEFT_ARENA_TRAIN && b.first <= s && s <= b.last &&
			    b.offset - base + b.size > top) {
				top = b.offset - base + b.size;
			}
		}
		if (top != plan->work.size || top == 0) {
			continue;
		}
		out->step = s;
		for (int32_t i = 0; i < plan->num_buffers; i++) {
			peft_buffer_rec b;
			int32_t keep = -1;

			peft_plan_read_buffer(plan, i, &b);
			if (b.arena != PEFT_ARENA_TRAIN || b.first > s || s > b.last) {
				continue;
			}
			if (b.kind == PEFT_BUF_VALUE && plan->act_cache == PEFT_CACHE_F32) {
				PEFT_TRY(last_keep(plan, b.owner, &keep));
			}
			if (b.kind == PEFT_BUF_KEEP || b.kind == PEFT_BUF_MASK ||
			    b.kind == PEFT_BUF_KEEP_LIN || b.kind == PEFT_BUF_KEEP_U || keep >= 0) {
				out->kept += b.size;
			} else if (b.kind == PEFT_BUF_GRAD || b.kind == PEFT_BUF_PARAM_GRAD) {
				out->grads += b.size;
			}
		}
		return PEFT_OK;
	}
	return PEFT_OK;
}
