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

/* The blob's body, in order: every trainable array (plan order), then the
 * optimizer state of each array (its m, then its v). fn sees each array's arena
 * bytes and their position in the blob; a nonzero return stops the visit and is
 * returned. with_opt false: the trainable arrays only (an inference arena has no
 * optimizer state). */
typedef int (*body_fn)(void *ctx, size_t pos, uint8_t *arena_bytes, size_t n);

static int visit_body(const peft_trainer *t, bool with_opt, body_fn fn, void *ctx)
{
	const peft_plan *plan = t->plan;
	const uint32_t states = with_opt ? states_per_param(plan) : 0u;
	size_t pos = PEFT_STATE_HEADER_SIZE;

	for (int part = 0; part < (states > 0u ? 2 : 1); part++) {
		for (int32_t k = 0; k < plan->num_layers; k++) {
			peft_layer_info L;
			/* Records were checked at load: peft_plan_layer_info cannot fail now. */
			if (peft_plan_layer_info(plan, k, &L) != PEFT_OK) {
				return -1;
			}
			for (int p = 0; p < PEFT_PARAM_KIND_COUNT; p++) {
				const uint32_t arrays[3] = {L.rec.param[p], L.rec.opt_m[p],
							    L.rec.opt_v[p]};
				const size_t n = 4u * (size_t)L.counts[p];

				for (uint32_t a = (part == 0) ? 0u : 1u;
				     L.trainable[p] && a <= (part == 0 ? 0u : states); a++) {
					const int rc = fn(ctx, pos, t->arena + arrays[a], n);

					if (rc != 0) {
						return rc;
					}
					pos += n;
				}
			}
		}
	}
	return 0;
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

static int array_finite(void *ctx, size_t pos, uint8_t *arena_bytes, size_t n)
{
	(void)ctx, (void)pos;
	return floats_finite(arena_bytes, n / 4u) ? 0 : 1;
}

/* Every trainable array and its optimizer state is finite. */
static bool state_finite(const peft_trainer *t)
{
	return visit_body(t, true, array_finite, NULL) == 0;
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

static int crc_array(void *ctx, size_t pos, uint8_t *arena_bytes, size_t n)
{
	(void)pos;
	*(uint32_t *)ctx = peft_crc32_update(*(uint32_t *)ctx, arena_bytes, n);
	return 0;
}

/* The header of the blob that the trainer's state gives now, CRC included. */
static void state_header(const peft_trainer *t, const peft_state_meta *meta,
			 uint8_t b[PEFT_STATE_HEADER_SIZE])
{
	const peft_plan *plan = t->plan;
	uint32_t crc;

	memset(b, 0, PEFT_STATE_HEADER_SIZE);
	peft_wr32(b + PEFT_BLOB_HDR_OFF_MAGIC, PEFT_STATE_MAGIC);
	peft_wr16(b + PEFT_BLOB_HDR_OFF_VERSION, PEFT_STATE_VERSION);
	peft_wr16(b + PEFT_BLOB_HDR_OFF_HEADER_SIZE, PEFT_STATE_HEADER_SIZE);
	peft_wr32(b + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH, (uint32_t)state_size(plan));
	peft_wr32(b + PEFT_STATE_HDR_OFF_PLAN_CRC, plan->crc);
	peft_wr32(b + PEFT_STATE_HDR_OFF_EPOCH, meta != NULL ? meta->epoch : 0u);
	peft_wr32(b + PEFT_STATE_HDR_OFF_SEQUENCE, meta != NULL ? meta->sequence : 0u);
	peft_wr32(b + PEFT_STATE_HDR_OFF_STEPS, t->step);
	peft_wr32(b + PEFT_STATE_HDR_OFF_PARAMS_BYTES, 4u * plan->trainable_params);
	peft_wr32(b + PEFT_STATE_HDR_OFF_OPT_BYTES,
		  4u * plan->trainable_params * states_per_param(plan));
	peft_wr32(b + PEFT_STATE_HDR_OFF_OPTIMIZER, (uint32_t)plan->optimizer.kind);
	crc = peft_crc32_update(0, b + PEFT_BLOB_CRC_START,
				PEFT_STATE_HEADER_SIZE - PEFT_BLOB_CRC_START);
	(void)visit_body(t, true, crc_array, &crc);
	peft_wr32(b + PEFT_BLOB_HDR_OFF_CRC, crc);
}

/* The bytes of [pos, pos + n) that fall into the window [offset, offset + len). */
struct window {
	size_t offset, len;
	uint8_t *dst;
};

static void copy_overlap(const struct window *w, size_t pos, const uint8_t *src, size_t n)
{
	const size_t lo = pos > w->offset ? pos : w->offset;
	const size_t hi = (pos + n < w->offset + w->len) ? pos + n : w->offset + w->len;

	if (lo < hi) {
		memcpy(w->dst + (lo - w->offset), src + (lo - pos), hi - lo);
	}
}

static int window_array(void *ctx, size_t pos, uint8_t *arena_bytes, size_t n)
{
	copy_overlap(ctx, pos, arena_bytes, n);
	return 0;
}

peft_status peft_trainer_export_state_range(const peft_trainer *t, const peft_state_meta *meta,
					    size_t offset, void *dst, size_t len)
{
	if (t == NULL || t->plan == NULL || t->arena == NULL || (dst == NULL && len > 0u) ||
	    t->mode != PEFT_MODE_TRAIN) {
		return PEFT_ERR_ARG;
	}
	if (offset > state_size(t->plan) || len > state_size(t->plan) - offset) {
		return PEFT_ERR_BUFFER_TOO_SMALL;
	}
	if (!state_finite(t)) {
		return PEFT_ERR_PARAMS_NONFINITE;
	}
	const struct window w = {offset, len, dst};

	if (offset < PEFT_STATE_HEADER_SIZE) {
		uint8_t header[PEFT_STATE_HEADER_SIZE];

		state_header(t, meta, header);
		copy_overlap(&w, 0, header, PEFT_STATE_HEADER_SIZE);
	}
	(void)visit_body(t, true, window_array, (void *)&w);
	return PEFT_OK;
}

peft_status peft_trainer_export_state(const peft_trainer *t, void *buf, size_t size,
				      size_t *written, const peft_state_meta *meta)
{
	if (t == NULL || t->plan == NULL || buf == NULL) {
		return PEFT_ERR_ARG;
	}
	const size_t total = state_size(t->plan);

	if (size < total) {
		return t->mode != PEFT_MODE_TRAIN ? PEFT_ERR_ARG : PEFT_ERR_BUFFER_TOO_SMALL;
	}
	PEFT_TRY(peft_trainer_export_state_range(t, meta, 0, buf, total));
	if (written != NULL) {
		*written = total;
	}
	return PEFT_OK;
}

/* ---- import: every check on the whole blob first, then the copy ---- */

static const peft_blob_errors state_errors = {
	.truncated = PEFT_ERR_STATE_TRUNCATED,
	.magic = PEFT_ERR_STATE_MAGIC,
	.version = PEFT_ERR_STATE_VERSION,
	.length = PEFT_ERR_STATE_LENGTH,
	.crc = PEFT_ERR_STATE_CRC,
};

struct reader {
	peft_state_read_fn read;
	void *ctx;
};

static int read_array(void *ctx, size_t pos, uint8_t *arena_bytes, size_t n)
{
	const struct reader *r = ctx;

	return r->read(r->ctx, pos, arena_bytes, n) != 0 ? 1 : 0;
}

peft_status peft_trainer_import_state_from(peft_trainer *t, peft_state_read_fn read, void *ctx,
					   size_t size, uint8_t *buf, size_t buf_size,
					   peft_state_meta *meta_out)
{
	if (t == NULL || t->plan == NULL || t->arena == NULL || read == NULL || buf == NULL ||
	    buf_size < PEFT_STATE_HEADER_SIZE) {
		return PEFT_ERR_ARG;
	}
	const peft_plan *plan = t->plan;
	uint8_t header[PEFT_STATE_HEADER_SIZE];
	const size_t head = size < PEFT_STATE_HEADER_SIZE ? size : PEFT_STATE_HEADER_SIZE;

	if (read(ctx, 0, header, head) != 0) {
		return PEFT_ERR_STATE_TRUNCATED;
	}
	/* The header's own checks (the CRC is over the whole blob: below). */
	const peft_status st =
		peft_blob_check_header(header, head, size, PEFT_STATE_MAGIC, PEFT_STATE_VERSION,
				       PEFT_STATE_HEADER_SIZE, &state_errors);
	if (st != PEFT_OK) {
		return st;
	}
	const uint32_t total = peft_rd32(header + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);
	uint32_t crc = peft_crc32_update(0, header + PEFT_BLOB_CRC_START,
					 PEFT_STATE_HEADER_SIZE - PEFT_BLOB_CRC_START);
	bool finite = true;

	for (size_t pos = PEFT_STATE_HEADER_SIZE; pos < total;) {
		/* Whole floats per chunk: the finite check reads them one by one. */
		const size_t left = total - pos;
		size_t n = (buf_size / 4u) * 4u;

		n = n < left ? n : left;
		if (read(ctx, pos, buf, n) != 0) {
			return PEFT_ERR_STATE_TRUNCATED;
		}
		crc = peft_crc32_update(crc, buf, n);
		finite = finite && floats_finite(buf, n / 4u);
		pos += n;
	}
	if (crc != peft_rd32(header + PEFT_BLOB_HDR_OFF_CRC)) {
		return PEFT_ERR_STATE_CRC;
	}
	if (peft_rd32(header + PEFT_STATE_HDR_OFF_PLAN_CRC) != plan->crc) {
		return PEFT_ERR_STATE_PLAN_MISMATCH;
	}
	if (total != state_size(plan) ||
	    peft_rd32(header + PEFT_STATE_HDR_OFF_PARAMS_BYTES) != 4u * plan->trainable_params ||
	    peft_rd32(header + PEFT_STATE_HDR_OFF_OPT_BYTES) !=
		    4u * plan->trainable_params * states_per_param(plan) ||
	    peft_rd32(header + PEFT_STATE_HDR_OFF_OPTIMIZER) != (uint32_t)plan->optimizer.kind ||
	    peft_rd32(header + PEFT_STATE_HDR_OFF_RESERVED) != 0u) {
		return PEFT_ERR_STATE_LENGTH;
	}
	if (!finite) {
		return PEFT_ERR_STATE_NONFINITE;
	}
	/* Straight from the blob into the arrays. A read that fails now (it read
	 * the same bytes above) leaves the trainer partly loaded, what is derived
	 * from the parameters (DoRA's norms) following what was loaded. */
	struct reader r = {read, ctx};
	const bool read_all = visit_body(t, t->mode == PEFT_MODE_TRAIN, read_array, &r) == 0;

	PEFT_TRY(peft_trainer_params_changed(t));
	if (!read_all) {
		return PEFT_ERR_STATE_TRUNCATED;
	}
	if (t->mode == PEFT_MODE_TRAIN) {
		t->step = peft_rd32(header + PEFT_STATE_HDR_OFF_STEPS);
		t->samples = 0;
		peft_trainer_clear_pending(t);
		memset(t->arena + plan->param_grads.offset, 0, plan->param_grads.size);
	}
	if (meta_out != NULL) {
		meta_out->epoch = peft_rd32(header + PEFT_STATE_HDR_OFF_EPOCH);
		meta_out->sequence = peft_rd32(header + PEFT_STATE_HDR_OFF_SEQUENCE);
	}
	return PEFT_OK;
}

struct memory_blob {
	const uint8_t *bytes;
	size_t size;
};

static int read_memory(void *ctx, size_t offset, void *dst, size_t len)
{
	const struct memory_blob *m = ctx;

	if (offset > m->size || len > m->size - offset) {
		return -1;
	}
	memcpy(dst, m->bytes + offset, len);
	return 0;
}

peft_status peft_trainer_import_state(peft_trainer *t, const void *buf, size_t size,
				      peft_state_meta *meta_out)
{
	uint8_t chunk[128];
	struct memory_blob m = {buf, size};

	if (buf == NULL) {
		return PEFT_ERR_ARG;
	}
	return peft_trainer_import_state_from(t, read_memory, &m, size, chunk, sizeof(chunk),
					      meta_out);
}
