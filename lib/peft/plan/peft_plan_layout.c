/* The arena layout, recomputed from the plan's layers and compared with every
 * offset and size the plan stores. scripts/micropeft/plan.py (_layout) is the
 * same algorithm; docs/formats.md describes it. Nothing is stored: each
 * tensor's slot is read back from its record once that record has been
 * checked, and live slots are a 64-bit mask. */
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

typedef struct {
	uint64_t used;
	int32_t peak;
} slot_set;

/* Lowest free slot, or -1 when all 64 are live. */
static int32_t slot_alloc(slot_set *s)
{
	for (int32_t i = 0; i < PEFT_MAX_SLOTS; i++) {
		if ((s->used & ((uint64_t)1 << i)) == 0) {
			s->used |= (uint64_t)1 << i;
			if (i + 1 > s->peak) {
				s->peak = i + 1;
			}
			return i;
		}
	}
	return -1;
}

static void slot_free(slot_set *s, uint32_t offset, uint32_t base, uint32_t slot_size)
{
	s->used &= ~((uint64_t)1 << ((offset - base) / slot_size));
}

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

/* The last layer that reads tensor t (num_layers for the logits). */
static int32_t last_use(const peft_plan *plan, int32_t t)
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

/* Backward needs t's values: a consumer computes weight / LoRA gradients from
 * it, or its producer's activation derivative reads it. */
static peft_status tensor_cached(const peft_plan *plan, int32_t t, bool *cached)
{
	peft_layer_info L;

	*cached = false;
	if (t > 0) {
		PEFT_TRY(peft_plan_layer_info(plan, t - 1, &L));
		if (L.needs_output_values) {
			*cached = true;
			return PEFT_OK;
		}
	}
	for (int32_t k = t > 0 ? t - 1 : 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		if (L.rec.input[0] == t && L.needs_input_values) {
			*cached = true;
			return PEFT_OK;
		}
	}
	return PEFT_OK;
}

static peft_status check_params_grads_opt(const peft_plan *plan, uint64_t *off)
{
	peft_layer_info L;
	const int32_t states = plan->optimizer.kind == PEFT_OPTIMIZER_ADAM ? 2
			       : plan->optimizer.momentum != 0.0f  ? 1
								   : 0;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (L.present[p]) {
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
			if (L.trainable[p]) {
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

static peft_status check_cached_tensor(const peft_plan *plan, int32_t t, uint64_t *off)
{
	peft_tensor_rec r;
	bool cached;
	const uint64_t elem = plan->act_cache == PEFT_CACHE_S8 ? 1u : 4u;

	PEFT_TRY(tensor_cached(plan, t, &cached));
	peft_plan_read_tensor(plan, t, &r);
	if (cached) {
		EXPECT(r.cache_offset, *off);
		EXPECT(r.cache_dtype, plan->act_cache);
		*off += al(elem * (uint64_t)peft_tensor_elements(&r));
	} else {
		EXPECT(r.cache_offset, PEFT_NONE);
		EXPECT(r.cache_dtype, 0);
	}
	return PEFT_OK;
}

static peft_status check_cache(const peft_plan *plan, uint64_t *off)
{
	peft_layer_info L;
	const uint64_t start = *off;

	PEFT_TRY(check_cached_tensor(plan, 0, off));
	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		if (L.present[PEFT_PARAM_GAMMA]) {
			EXPECT(L.rec.cache_z, *off);
			*off += al(4u * (uint64_t)L.out_size);
		} else {
			EXPECT(L.rec.cache_z, PEFT_NONE);
		}
		if (L.present[PEFT_PARAM_LORA_A]) {
			EXPECT(L.rec.cache_u, *off);
			*off += al(4u * (uint64_t)L.rows * L.rec.lora_rank);
		} else {
			EXPECT(L.rec.cache_u, PEFT_NONE);
		}
		PEFT_TRY(check_cached_tensor(plan, L.rec.output, off));
	}
	EXPECT(plan->probs_offset, *off);
	*off += al(4u * (uint64_t)plan->num_classes);
	EXPECT(plan->cache.size, *off - start);
	return PEFT_OK;
}

static bool is_cached(const peft_plan *plan, int32_t t)
{
	peft_tensor_rec r;

	peft_plan_read_tensor(plan, t, &r);
	return r.cache_offset != PEFT_NONE;
}

/* Forward temporaries of training (tensors not cached). */
static peft_status check_forward_slots(const peft_plan *plan, uint32_t base, int32_t *peak)
{
	slot_set s = {0, 0};
	peft_tensor_rec r;
	peft_layer_rec L;
	const uint32_t size = plan->slot_size;

	for (int32_t t = 0; t < plan->num_tensors; t++) {
		/* Tensor t is the input (t == 0) or the output of layer t - 1. */
		peft_plan_read_tensor(plan, t, &r);
		if (r.cache_offset == PEFT_NONE) {
			int32_t i = slot_alloc(&s);

			if (i < 0) {
				return PEFT_ERR_PLAN_FIELD;
			}
			EXPECT(r.fwd_offset, (uint64_t)base + (uint64_t)i * size);
		} else {
			EXPECT(r.fwd_offset, PEFT_NONE);
		}
		if (t == 0) {
			continue;
		}
		peft_plan_read_layer(plan, t - 1, &L);
		for (uint32_t k = 0; k < L.num_inputs; k++) {
			const int32_t in = L.input[k];

			if (k == 1 && L.input[0] == in) {
				continue;
			}
			if (!is_cached(plan, in) && last_use(plan, in) == t - 1) {
				peft_plan_read_tensor(plan, in, &r);
				slot_free(&s, r.fwd_offset, base, size);
			}
		}
	}
	*peak = s.peak;
	return PEFT_OK;
}

/* Activation gradients, walking the backward pass. */
static peft_status check_gradient_slots(const peft_plan *plan, uint32_t base, int32_t *peak)
{
	slot_set s = {0, 0};
	peft_tensor_rec r;
	peft_layer_info L;
	const uint32_t size = plan->slot_size;
	int32_t i = slot_alloc(&s);

	peft_plan_read_tensor(plan, plan->output_tensor, &r);
	EXPECT(r.grad_offset, (uint64_t)base + (uint64_t)i * size);
	for (int32_t k = plan->num_layers - 1; k >= 0; k--) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		if (!L.runs_backward) {
			continue;
		}
		for (uint32_t j = 0; j < L.rec.num_inputs; j++) {
			const int32_t in = L.rec.input[j];

			if (!L.backward_input[j] || last_use(plan, in) != k ||
			    (j == 1 && L.rec.input[0] == in)) {
				continue; /* no gradient, or its slot exists already */
			}
			i = slot_alloc(&s);
			if (i < 0) {
				return PEFT_ERR_PLAN_FIELD;
			}
			peft_plan_read_tensor(plan, in, &r);
			EXPECT(r.grad_offset, (uint64_t)base + (uint64_t)i * size);
		}
		peft_plan_read_tensor(plan, L.rec.output, &r);
		slot_free(&s, r.grad_offset, base, size);
	}
	for (int32_t t = 0; t < plan->num_tensors; t++) {
		peft_plan_read_tensor(plan, t, &r);
		if (!r.needs_grad) {
			EXPECT(r.grad_offset, PEFT_NONE);
		}
	}
	*peak = s.peak;
	return PEFT_OK;
}

static peft_status check_train_scratch(const peft_plan *plan, uint64_t start, uint64_t *size)
{
	peft_layer_info L;
	const bool s8 = plan->act_cache == PEFT_CACHE_S8;

	*size = 0;
	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		uint64_t sizes[PEFT_S_TRAIN_COUNT] = {0};
		const bool lora = L.present[PEFT_PARAM_LORA_A];

		if (s8 && is_cached(plan, L.rec.input[0])) {
			sizes[PEFT_S_IN0] = 4u * (uint64_t)L.in_size[0];
		}
		if (s8 && L.rec.num_inputs == 2u && is_cached(plan, L.rec.input[1])) {
			sizes[PEFT_S_IN1] = 4u * (uint64_t)L.in_size[1];
		}
		if (s8 && is_cached(plan, L.rec.output)) {
			sizes[PEFT_S_OUT] = 4u * (uint64_t)L.out_size;
		}
		if (lora || L.present[PEFT_PARAM_GAMMA]) {
			sizes[PEFT_S_TMP_A] = 4u * (uint64_t)L.out_size;
		}
		if (lora) {
			sizes[PEFT_S_TMP_B] = 4u * (uint64_t)L.rows * L.rec.lora_rank;
		}
		uint64_t pos = start;

		for (int j = 0; j < PEFT_S_TRAIN_COUNT; j++) {
			if (sizes[j] != 0) {
				EXPECT(L.rec.scratch_train[j], pos);
				pos += al(sizes[j]);
			} else {
				EXPECT(L.rec.scratch_train[j], PEFT_NONE);
			}
		}
		if (pos - start > *size) {
			*size = pos - start;
		}
	}
	return PEFT_OK;
}

static peft_status check_infer(const peft_plan *plan)
{
	slot_set s = {0, 0};
	peft_tensor_rec r;
	peft_layer_info L;
	const uint32_t size = plan->slot_size;
	const uint64_t base = plan->params.size;

	for (int32_t t = 0; t < plan->num_tensors; t++) {
		int32_t i = slot_alloc(&s);

		if (i < 0) {
			return PEFT_ERR_PLAN_FIELD;
		}
		peft_plan_read_tensor(plan, t, &r);
		EXPECT(r.infer_offset, base + (uint64_t)i * size);
		if (t == 0) {
			continue;
		}
		peft_layer_rec lr;

		peft_plan_read_layer(plan, t - 1, &lr);
		for (uint32_t k = 0; k < lr.num_inputs; k++) {
			const int32_t in = lr.input[k];

			if ((k == 1 && lr.input[0] == in) || last_use(plan, in) != t - 1) {
				continue;
			}
			peft_plan_read_tensor(plan, in, &r);
			slot_free(&s, r.infer_offset, (uint32_t)base, size);
		}
	}
	EXPECT(plan->infer_slots.size, (uint64_t)s.peak * size);
	const uint64_t start = base + (uint64_t)s.peak * size;
	uint64_t scratch = 0;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		PEFT_TRY(peft_plan_layer_info(plan, k, &L));
		const bool lora = L.present[PEFT_PARAM_LORA_A];
		const uint64_t sizes[PEFT_S_INFER_COUNT] = {
			L.present[PEFT_PARAM_GAMMA] ? 4u * (uint64_t)L.out_size : 0u,
			lora ? 4u * (uint64_t)L.out_size : 0u,
			lora ? 4u * (uint64_t)L.rows * L.rec.lora_rank : 0u,
		};
		uint64_t pos = start;

		for (int j = 0; j < PEFT_S_INFER_COUNT; j++) {
			if (sizes[j] != 0) {
				EXPECT(L.rec.scratch_infer[j], pos);
				pos += al(sizes[j]);
			} else {
				EXPECT(L.rec.scratch_infer[j], PEFT_NONE);
			}
		}
		if (pos - start > scratch) {
			scratch = pos - start;
		}
	}
	EXPECT(plan->infer_scratch.size, scratch);
	EXPECT(plan->infer_size, start + scratch);
	return PEFT_OK;
}

peft_status peft_plan_check_layout(const peft_plan *plan)
{
	uint64_t off = 0;
	int32_t max_size = 0;

	PEFT_TRY(check_params_grads_opt(plan, &off));
	PEFT_TRY(check_cache(plan, &off));
	for (int32_t t = 0; t < plan->num_tensors; t++) {
		const int32_t n = tensor_size(plan, t);

		max_size = n > max_size ? n : max_size;
	}
	EXPECT(plan->slot_size, al(4u * (uint64_t)max_size));
	if (off > UINT32_MAX) {
		return PEFT_ERR_PLAN_ARENA_OFFSET;
	}
	int32_t fwd_peak, bwd_peak;

	PEFT_TRY(check_forward_slots(plan, (uint32_t)off, &fwd_peak));
	PEFT_TRY(check_gradient_slots(plan, (uint32_t)off, &bwd_peak));
	const int32_t peak = fwd_peak > bwd_peak ? fwd_peak : bwd_peak;

	EXPECT(plan->slots.size, (uint64_t)peak * plan->slot_size);
	off += (uint64_t)peak * plan->slot_size;
	uint64_t scratch;

	PEFT_TRY(check_train_scratch(plan, off, &scratch));
	EXPECT(plan->scratch.size, scratch);
	EXPECT(plan->train_size, off + scratch);
	return check_infer(plan);
}
