/* Trained-state blob (docs/formats.md, "Trained-state blob"): the header of
 * peft_formats.h (PEFT_STATE_HDR_*), then every trainable array (plan order,
 * packed float32), then the optimizer state of each array (m, then v for
 * Adam), packed likewise. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../common/peft_blob.h"
#include "../common/peft_try.h"
#include "../plan/peft_plan_internal.h"
#include "peft/peft_bytes.h"
#include "peft/peft_crc32.h"
#include "peft/peft_formats.h"
#include "peft/peft_state.h"
#include "peft/peft_trainer.h"
#include "peft_trainer_internal.h"

static uint32_t states_per_param(const peft_plan *plan)
{
	if (plan->optimizer.kind == PEFT_OPTIMIZER_ADAM) {
		return 2u;
	}
	return plan->optimizer.momentum != 0.0f ? 1u : 0u;
}

/* Visit every trainable array: copy between the blob cursor and the arena.
 * to_blob: arena -> blob; else blob -> arena. with_opt: the optimizer part. */
static void transfer(const peft_trainer *t, uint8_t *blob, bool to_blob, bool with_opt)
{
	const peft_plan *plan = t->plan;
	uint8_t *pos = blob + PEFT_STATE_HEADER_SIZE;
	uint8_t *opt = pos + 4u * (size_t)plan->trainable_params;
	const uint32_t states = states_per_param(plan);

	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_info L;
		/* Records were checked at load: peft_plan_layer_info cannot fail now. */
		if (peft_plan_layer_info(plan, k, &L) != PEFT_OK) {
			return;
		}
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			if (!L.trainable[p]) {
				continue;
			}
			const size_t n = 4u * (size_t)L.counts[p];
			float *arrays[3] = {peft_arena_f32(t, L.rec.param[p]),
					    peft_arena_f32(t, L.rec.opt_m[p]),
					    peft_arena_f32(t, L.rec.opt_v[p])};

			if (to_blob) {
				memcpy(pos, arrays[0], n);
			} else {
				memcpy(arrays[0], pos, n);
			}
			pos += n;
			for (uint32_t s = 0; s < states; s++) {
				if (with_opt && to_blob) {
					memcpy(opt, arrays[1 + s], n);
				} else if (with_opt) {
					memcpy(arrays[1 + s], opt, n);
				}
				opt += n;
			}
		}
	}
}

static bool floats_finite(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float v;

		memcpy(&v, p + 4u * i, sizeof(v));
		if (!isfinite(v)) {
			return false;
		}
	}
	return true;
}

/* Every trainable array and its optimizer state is finite. */
static bool state_finite(const peft_trainer *t)
{
	const peft_plan *plan = t->plan;
	const uint32_t states = states_per_param(plan);

	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_info L;

		if (peft_plan_layer_info(plan, k, &L) != PEFT_OK) {
			return false;
		}
		for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
			const uint32_t arrays[3] = {L.rec.param[p], L.rec.opt_m[p], L.rec.opt_v[p]};

			for (uint32_t a = 0; L.trainable[p] && a <= states; a++) {
				if (!floats_finite(t->arena + arrays[a], (size_t)L.counts[p])) {
					return false;
				}
			}
		}
	}
	return true;
}

static size_t state_size(const peft_plan *plan)
{
	return PEFT_STATE_HEADER_SIZE +
	       4u * (size_t)plan->trainable_params * (1u + states_per_param(plan));
}

peft_status peft_trainer_state_size(const peft_trainer *t, size_t *bytes)
{
	if (t == NULL || t->plan == NULL || bytes == NULL) {
		return PEFT_ERR_ARG;
	}
	*bytes = state_size(t->plan);
	return PEFT_OK;
}

peft_status peft_trainer_export_state(const peft_trainer *t, void *buf, size_t size,
				      size_t *written, const peft_state_meta *meta)
{
	if (t == NULL || t->plan == NULL || t->arena == NULL || buf == NULL ||
	    t->mode != PEFT_MODE_TRAIN) {
		return PEFT_ERR_ARG;
	}
	const peft_plan *plan = t->plan;
	const size_t total = state_size(plan);
	uint8_t *b = buf;

	if (size < total) {
		return PEFT_ERR_BUFFER_TOO_SMALL;
	}
	if (!state_finite(t)) {
		return PEFT_ERR_PARAMS_NONFINITE;
	}
	memset(b, 0, PEFT_STATE_HEADER_SIZE);
	peft_wr32(b + PEFT_BLOB_HDR_OFF_MAGIC, PEFT_STATE_MAGIC);
	peft_wr16(b + PEFT_BLOB_HDR_OFF_VERSION, PEFT_STATE_VERSION);
	peft_wr16(b + PEFT_BLOB_HDR_OFF_HEADER_SIZE, PEFT_STATE_HEADER_SIZE);
	peft_wr32(b + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH, (uint32_t)total);
	peft_wr32(b + PEFT_STATE_HDR_OFF_PLAN_CRC, plan->crc);
	peft_wr32(b + PEFT_STATE_HDR_OFF_EPOCH, meta != NULL ? meta->epoch : 0u);
	peft_wr32(b + PEFT_STATE_HDR_OFF_SEQUENCE, meta != NULL ? meta->sequence : 0u);
	peft_wr32(b + PEFT_STATE_HDR_OFF_STEPS, t->step);
	peft_wr32(b + PEFT_STATE_HDR_OFF_PARAMS_BYTES, 4u * plan->trainable_params);
	peft_wr32(b + PEFT_STATE_HDR_OFF_OPT_BYTES,
		  4u * plan->trainable_params * states_per_param(plan));
	peft_wr32(b + PEFT_STATE_HDR_OFF_OPTIMIZER, (uint32_t)plan->optimizer.kind);
	transfer(t, b, true, true);
	peft_wr32(b + PEFT_BLOB_HDR_OFF_CRC,
		  peft_crc32_update(0, b + PEFT_BLOB_CRC_START, total - PEFT_BLOB_CRC_START));
	if (written != NULL) {
		*written = total;
	}
	return PEFT_OK;
}

peft_status peft_trainer_import_state(peft_trainer *t, const void *buf, size_t size,
				      peft_state_meta *meta_out)
{
	if (t == NULL || t->plan == NULL || t->arena == NULL || buf == NULL) {
		return PEFT_ERR_ARG;
	}
	static const peft_blob_errors errors = {
		.truncated = PEFT_ERR_STATE_TRUNCATED,
		.magic = PEFT_ERR_STATE_MAGIC,
		.version = PEFT_ERR_STATE_VERSION,
		.length = PEFT_ERR_STATE_LENGTH,
		.crc = PEFT_ERR_STATE_CRC,
	};
	const peft_plan *plan = t->plan;
	const uint8_t *b = buf;

	PEFT_TRY(peft_blob_check(b, size, PEFT_STATE_MAGIC, PEFT_STATE_VERSION,
				 PEFT_STATE_HEADER_SIZE, &errors));
	const uint32_t total = peft_rd32(b + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);
	if (peft_rd32(b + PEFT_STATE_HDR_OFF_PLAN_CRC) != plan->crc) {
		return PEFT_ERR_STATE_PLAN_MISMATCH;
	}
	if (total != state_size(plan) ||
	    peft_rd32(b + PEFT_STATE_HDR_OFF_PARAMS_BYTES) != 4u * plan->trainable_params ||
	    peft_rd32(b + PEFT_STATE_HDR_OFF_OPT_BYTES) !=
		    4u * plan->trainable_params * states_per_param(plan) ||
	    peft_rd32(b + PEFT_STATE_HDR_OFF_OPTIMIZER) != (uint32_t)plan->optimizer.kind ||
	    peft_rd32(b + PEFT_STATE_HDR_OFF_RESERVED) != 0u) {
		return PEFT_ERR_STATE_LENGTH;
	}
	if (!floats_finite(b + PEFT_STATE_HEADER_SIZE, (total - PEFT_STATE_HEADER_SIZE) / 4u)) {
		return PEFT_ERR_STATE_NONFINITE;
	}
	/* transfer() only reads the blob when copying into the arena. */
	transfer(t, (uint8_t *)(uintptr_t)b, false, t->mode == PEFT_MODE_TRAIN);
	if (t->mode == PEFT_MODE_TRAIN) {
		t->step = peft_rd32(b + PEFT_STATE_HDR_OFF_STEPS);
		t->samples = 0;
		t->pending_label = -1;
		memset(t->arena + plan->param_grads.offset, 0, plan->param_grads.size);
	}
	if (meta_out != NULL) {
		meta_out->epoch = peft_rd32(b + PEFT_STATE_HDR_OFF_EPOCH);
		meta_out->sequence = peft_rd32(b + PEFT_STATE_HDR_OFF_SEQUENCE);
	}
	return PEFT_OK;
}
