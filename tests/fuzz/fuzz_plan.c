/* libFuzzer harness: the plan reader, then everything a device does with an
 * accepted plan (train, step, predict in both modes, export and re-import the
 * state), under ASan + UBSan with every report fatal.
 *
 * Input: one flag byte, then a model+plan container as `micropeft pack`
 * writes it (docs/formats.md; only its offset fields are read here, the
 * container's own checks are fuzz_container's job). The model and the plan
 * are copied into heap buffers of exactly their lengths.
 *   flag bit 0: re-sign the plan (length and CRC32), so that mutations reach
 *               the field checks behind the CRC;
 *   flag bit 1: first write the model's length and CRC32 into the plan;
 *   flag bits 2-7: the label and the seed of the input sample.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../lib/peft/plan/peft_plan_internal.h"
#include "fuzz_common.h"
#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"

/* Bounds that keep one execution short; larger plans are only loaded. */
#define FUZZ_MAX_ARENA (1u << 20)
#define FUZZ_MAX_MACS  (1u << 21)

/* Multiply-accumulates of one forward pass, to skip plans that would take long. */
static uint64_t forward_macs(const peft_plan *plan)
{
	uint64_t macs = 0;

	for (int32_t k = 0; k < plan->num_layers; k++) {
		peft_layer_info L;

		FUZZ_ASSERT(peft_plan_layer_info(plan, k, &L) == PEFT_OK);
		uint64_t per_output = 1;

		if (L.rec.op == PEFT_OP_CONV_2D || L.rec.op == PEFT_OP_DEPTHWISE_CONV_2D ||
		    L.rec.op == PEFT_OP_FULLY_CONNECTED) {
			per_output = L.rec.weights.count / (uint32_t)L.out_features;
		} else if (L.rec.op == PEFT_OP_AVERAGE_POOL_2D) {
			per_output = (uint64_t)L.rec.kernel_h * (uint64_t)L.rec.kernel_w;
		} else if (L.rec.op == PEFT_OP_MEAN) {
			per_output = (uint64_t)L.in_size[0];
		}
		macs += (uint64_t)L.out_size * per_output * (1u + L.rec.lora_rank);
	}
	return macs;
}

static bool is_one_of(peft_status st, const peft_status *allowed, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (st == allowed[i]) {
			return true;
		}
	}
	return false;
}

#define EXPECT_ONE_OF(st, ...)                                                                     \
	do {                                                                                       \
		const peft_status allowed_[] = {__VA_ARGS__};                                      \
		if (!is_one_of((st), allowed_, sizeof(allowed_) / sizeof(allowed_[0]))) {          \
			fprintf(stderr, "unexpected status %d: %s\n", (int)(st),                   \
				peft_status_str(st));                                              \
		}                                                                                  \
		FUZZ_ASSERT(is_one_of((st), allowed_, sizeof(allowed_) / sizeof(allowed_[0])));    \
	} while (0)

static void train_round(const peft_plan *plan, const int8_t *input, int32_t label)
{
	size_t need, hw, state_size, written;
	peft_trainer t;
	float loss;

	FUZZ_ASSERT(peft_plan_arena_size(plan, PEFT_MODE_TRAIN, &need) == PEFT_OK);
	if (need > FUZZ_MAX_ARENA) {
		return;
	}
	uint8_t *arena = malloc(need > 0 ? need : 1);

	FUZZ_ASSERT(arena != NULL);
	FUZZ_ASSERT(peft_trainer_init(&t, plan, PEFT_MODE_TRAIN, arena, need) == PEFT_OK);
	for (int i = 0; i < 2; i++) {
		peft_status st = peft_trainer_train_sample_s8(&t, input, label, &loss);

		EXPECT_ONE_OF(st, PEFT_OK, PEFT_ERR_NUMERIC, PEFT_ERR_DIVERGED);
		FUZZ_ASSERT(st != PEFT_OK || isfinite(loss));
	}
	const uint32_t step_before = t.step;
	peft_status st = peft_trainer_step(&t);

	EXPECT_ONE_OF(st, PEFT_OK, PEFT_ERR_NUMERIC, PEFT_ERR_DIVERGED);
	FUZZ_ASSERT(st == PEFT_OK ? t.step <= step_before + 1u : t.step == step_before);
	FUZZ_ASSERT(t.samples == 0);
	float logits[256];
	int32_t predicted = -1;

	st = peft_trainer_predict_s8(&t, input, plan->num_classes <= 256 ? logits : NULL,
				     &predicted);
	EXPECT_ONE_OF(st, PEFT_OK, PEFT_ERR_LOGITS_NONFINITE);
	FUZZ_ASSERT(st != PEFT_OK || (predicted >= 0 && predicted < plan->num_classes));
	FUZZ_ASSERT(peft_trainer_arena_high_water(&t, &hw) == PEFT_OK && hw <= need);

	/* The state leaves and comes back unchanged: export(import(export)) == export. */
	FUZZ_ASSERT(peft_trainer_state_size(&t, &state_size) == PEFT_OK);
	uint8_t *state = malloc(state_size);
	uint8_t *again = malloc(state_size);
	const peft_state_meta meta = {3u, 7u};
	peft_state_meta meta_back;

	FUZZ_ASSERT(state != NULL && again != NULL);
	st = peft_trainer_export_state(&t, state, state_size, &written, &meta);
	EXPECT_ONE_OF(st, PEFT_OK, PEFT_ERR_PARAMS_NONFINITE);
	if (st == PEFT_OK) {
		FUZZ_ASSERT(written == state_size);
		FUZZ_ASSERT(peft_trainer_import_state(&t, state, state_size, &meta_back) ==
			    PEFT_OK);
		FUZZ_ASSERT(meta_back.epoch == 3u && meta_back.sequence == 7u);
		FUZZ_ASSERT(peft_trainer_export_state(&t, again, state_size, &written, &meta) ==
			    PEFT_OK);
		FUZZ_ASSERT(memcmp(state, again, state_size) == 0);
		/* One byte short is refused, never read past. */
		FUZZ_ASSERT(peft_trainer_import_state(&t, state, state_size - 1u, NULL) ==
			    PEFT_ERR_STATE_TRUNCATED);
	}
	free(again);
	free(arena);

	/* The inference arena takes the same state. */
	FUZZ_ASSERT(peft_plan_arena_size(plan, PEFT_MODE_INFER, &need) == PEFT_OK);
	if (need <= FUZZ_MAX_ARENA) {
		arena = malloc(need > 0 ? need : 1);
		FUZZ_ASSERT(arena != NULL);
		FUZZ_ASSERT(peft_trainer_init(&t, plan, PEFT_MODE_INFER, arena, need) == PEFT_OK);
		if (st == PEFT_OK) {
			FUZZ_ASSERT(peft_trainer_import_state(&t, state, state_size, NULL) ==
				    PEFT_OK);
		}
		st = peft_trainer_predict_s8(&t, input, NULL, &predicted);
		EXPECT_ONE_OF(st, PEFT_OK, PEFT_ERR_LOGITS_NONFINITE);
		FUZZ_ASSERT(peft_trainer_arena_high_water(&t, &hw) == PEFT_OK && hw <= need);
		free(arena);
	}
	free(state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1u + 32u) {
		return 0;
	}
	const uint8_t flags = data[0];
	const uint8_t *container = data + 1;
	const size_t avail = size - 1u;
	const uint32_t m_off = fuzz_rd32(container + 16), m_len = fuzz_rd32(container + 20);
	const uint32_t p_off = fuzz_rd32(container + 24), p_len = fuzz_rd32(container + 28);

	if (m_off > avail || m_len > avail - m_off || p_off > avail || p_len > avail - p_off) {
		return 0;
	}
	uint8_t *model = fuzz_copy(container + m_off, m_len);
	uint8_t *blob = fuzz_copy(container + p_off, p_len);

	if ((flags & 2u) && p_len >= 24u) {
		fuzz_wr32(blob + 16, peft_crc32_update(0, model, m_len));
		fuzz_wr32(blob + 20, m_len);
	}
	if (flags & 1u) {
		fuzz_resign(blob, p_len);
	}
	peft_plan plan;
	const peft_status st = peft_plan_load(&plan, blob, p_len, model, m_len);

	if (st == PEFT_OK) {
		peft_dims d;

		FUZZ_ASSERT(peft_plan_input_dims(&plan, &d) == PEFT_OK);
		const size_t n = (size_t)d.h * (size_t)d.w * (size_t)d.c;

		if (forward_macs(&plan) <= FUZZ_MAX_MACS && n <= FUZZ_MAX_ARENA) {
			int8_t *input = malloc(n);
			uint32_t x = 2654435761u * (flags | 1u);

			FUZZ_ASSERT(input != NULL);
			for (size_t i = 0; i < n; i++) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				input[i] = (int8_t)(x >> 24);
			}
			train_round(&plan, input, (int32_t)(flags >> 2) % plan.num_classes);
			free(input);
		}
	}
	free(blob);
	free(model);
	return 0;
}
