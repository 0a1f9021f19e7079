/* libFuzzer harness: the trained-state import, under ASan + UBSan.
 *
 * Input: one flag byte, then a state blob. The plans are the fixtures of the
 * host tests (tests/host/peft_plan_fixtures.h, from the Python planner),
 * copied into heap buffers of exactly their lengths.
 *   flag bits 0-1: the fixture (modulo their count);
 *   flag bit 2:    import into an inference trainer instead of a training one;
 *   flag bit 3:    re-sign the blob (its length, the plan's CRC32, its own
 *                  CRC32), so that mutations reach the checks behind the CRC.
 * An import must change nothing unless it succeeds; an accepted state must
 * export back byte for byte and keep training within the arena.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../host/peft_plan_fixtures.h"
#include "fuzz_common.h"
#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixtures, loaded once (their heap copies stay for the process): the
 * plan reader is fuzz_plan's subject, the import is this one's. */
static peft_plan plans[PEFT_PLAN_FIXTURE_COUNT];

static const peft_plan *fixture_plan(size_t i)
{
	if (plans[i].blob == NULL) {
		const peft_plan_fixture *f = &peft_plan_fixtures[i];
		uint8_t *model = fuzz_copy(f->model, f->model_len);
		uint8_t *blob = fuzz_copy(f->plan, f->plan_len);

		FUZZ_ASSERT(peft_plan_load(&plans[i], blob, f->plan_len, model, f->model_len) ==
			    PEFT_OK);
	}
	return &plans[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1u) {
		return 0;
	}
	const uint8_t flags = data[0];
	const peft_plan *plan = fixture_plan((flags & 3u) % PEFT_PLAN_FIXTURE_COUNT);
	const peft_mode mode = (flags & 4u) ? PEFT_MODE_INFER : PEFT_MODE_TRAIN;
	const size_t n = size - 1u;
	uint8_t *blob = fuzz_copy(data + 1, n);
	peft_trainer t;
	size_t need, hw;

	if ((flags & 8u) && n >= 20u) {
		fuzz_wr32(blob + 16, plan->crc);
		fuzz_resign(blob, n);
	}
	FUZZ_ASSERT(peft_plan_arena_size(plan, mode, &need) == PEFT_OK);
	uint8_t *arena = malloc(need);
	uint8_t *pristine = malloc(need);

	FUZZ_ASSERT(arena != NULL && pristine != NULL);
	FUZZ_ASSERT(peft_trainer_init(&t, plan, mode, arena, need) == PEFT_OK);
	memcpy(pristine, arena, need);
	const peft_trainer before = t;
	peft_state_meta meta;
	const peft_status st = peft_trainer_import_state(&t, blob, n, &meta);

	if (st != PEFT_OK) {
		/* Refused: not one byte of the arena or the trainer changed. */
		FUZZ_ASSERT(memcmp(arena, pristine, need) == 0);
		FUZZ_ASSERT(t.step == before.step && t.samples == before.samples);
	} else if (mode == PEFT_MODE_TRAIN) {
		size_t state_size, written;

		FUZZ_ASSERT(peft_trainer_state_size(&t, &state_size) == PEFT_OK);
		FUZZ_ASSERT(state_size <= n);
		uint8_t *again = malloc(state_size);

		FUZZ_ASSERT(again != NULL);
		FUZZ_ASSERT(peft_trainer_export_state(&t, again, state_size, &written, &meta) ==
			    PEFT_OK);
		FUZZ_ASSERT(written == state_size && memcmp(again, blob, state_size) == 0);
		free(again);
		peft_dims d;

		FUZZ_ASSERT(peft_plan_input_dims(plan, &d) == PEFT_OK);
		int8_t *input = calloc((size_t)d.h * d.w * d.c, 1);

		FUZZ_ASSERT(input != NULL);
		const peft_status train = peft_trainer_train_sample_s8(&t, input, 0, NULL);

		FUZZ_ASSERT(train == PEFT_OK || train == PEFT_ERR_NUMERIC ||
			    train == PEFT_ERR_DIVERGED);
		const peft_status step = peft_trainer_step(&t);

		FUZZ_ASSERT(step == PEFT_OK || step == PEFT_ERR_NUMERIC ||
			    step == PEFT_ERR_DIVERGED);
		free(input);
	}
	FUZZ_ASSERT(peft_trainer_arena_high_water(&t, &hw) == PEFT_OK && hw <= need);
	free(pristine);
	free(arena);
	free(blob);
	return 0;
}
