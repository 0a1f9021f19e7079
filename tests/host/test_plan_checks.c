/* The plan reader's checks, one expected status per corruption, under ASan +
 * UBSan in build/asan: every header bit flipped, every truncation, specific
 * field edits re-signed with a fresh CRC (so that the field check, not the CRC
 * check, answers), and shapes whose element counts overflow. Random and
 * structural mutations are the libFuzzer harnesses' job (tests/fuzz). The
 * fixtures and their arena figures come from the Python planner
 * (tests/host/gen_plan_fixtures.py). */
#include <stdint.h>
#include <string.h>

#include "peft/peft_crc32.h"
#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft_plan_fixtures.h"
#include "peft_test.h"

#define MAX_BLOB 8192
#define MAX_MODEL 8192
#define ARENA_BYTES 65536
#define HEADER 128u
#define TENSOR_REC 40u
#define LAYER_REC 216u

static uint8_t blob[MAX_BLOB] __attribute__((aligned(16)));
static uint8_t model[MAX_MODEL] __attribute__((aligned(16)));
static uint8_t arena[ARENA_BYTES] __attribute__((aligned(16)));
static uint32_t rng_state = 12345u;

static uint32_t xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void resign(size_t len)
{
	wr32(blob + 12, peft_crc32_update(0, blob + 16, rd32(blob + 8) - 16u));
	(void)len;
}

static void reset(const peft_plan_fixture *f)
{
	PEFT_CHECK(f->plan_len <= MAX_BLOB && f->model_len <= MAX_MODEL);
	memcpy(blob, f->plan, f->plan_len);
	memcpy(model, f->model, f->model_len);
}

static peft_status load(const peft_plan_fixture *f, size_t blob_len, peft_plan *plan)
{
	return peft_plan_load(plan, blob, blob_len, model, f->model_len);
}

static size_t layer_at(const peft_plan_fixture *f, int k)
{
	return HEADER + (size_t)f->num_tensors * TENSOR_REC + (size_t)k * LAYER_REC;
}

/* Train one sample and step when the arena is large enough; predict in both modes. */
static void exercise(const peft_plan *plan)
{
	peft_trainer t;
	size_t need, hw;
	peft_dims d;
	int8_t input[4096];
	float loss, logits[64];
	int32_t pred;

	PEFT_CHECK_EQ_INT(peft_plan_input_dims(plan, &d), PEFT_OK);
	const int32_t n = d.h * d.w * d.c;

	if (n > (int32_t)sizeof(input) || plan->num_classes > 64) {
		return;
	}
	for (int32_t i = 0; i < n; i++) {
		input[i] = (int8_t)(xorshift() & 0xFF);
	}
	PEFT_CHECK_EQ_INT(peft_plan_arena_size(plan, PEFT_MODE_TRAIN, &need), PEFT_OK);
	if (need <= ARENA_BYTES) {
		PEFT_CHECK_EQ_INT(peft_trainer_init(&t, plan, PEFT_MODE_TRAIN, arena, need), PEFT_OK);
		peft_status st = peft_trainer_train_sample_s8(&t, input, 0, &loss);

		PEFT_CHECK(st == PEFT_OK || st == PEFT_ERR_NUMERIC || st == PEFT_ERR_DIVERGED);
		st = peft_trainer_step(&t);
		PEFT_CHECK(st == PEFT_OK || st == PEFT_ERR_NUMERIC || st == PEFT_ERR_DIVERGED);
		PEFT_CHECK_EQ_INT(peft_trainer_arena_high_water(&t, &hw), PEFT_OK);
		PEFT_CHECK(hw <= need);
	}
	PEFT_CHECK_EQ_INT(peft_plan_arena_size(plan, PEFT_MODE_INFER, &need), PEFT_OK);
	if (need <= ARENA_BYTES) {
		PEFT_CHECK_EQ_INT(peft_trainer_init(&t, plan, PEFT_MODE_INFER, arena, need), PEFT_OK);
		peft_status st = peft_trainer_predict_s8(&t, input, logits, &pred);

		PEFT_CHECK(st == PEFT_OK || st == PEFT_ERR_LOGITS_NONFINITE);
	}
}

static void check_valid(const peft_plan_fixture *f)
{
	peft_plan plan;
	peft_arena_breakdown b;
	size_t train, infer, hw;
	peft_trainer t;

	reset(f);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_OK);
	/* A flash partition may be longer than the plan. */
	PEFT_CHECK_EQ_INT(load(f, MAX_BLOB, &plan), PEFT_OK);
	PEFT_CHECK_EQ_INT(peft_plan_arena_size(&plan, PEFT_MODE_TRAIN, &train), PEFT_OK);
	PEFT_CHECK_EQ_INT(peft_plan_arena_size(&plan, PEFT_MODE_INFER, &infer), PEFT_OK);
	PEFT_CHECK_EQ_INT(train, f->train_size);
	PEFT_CHECK_EQ_INT(infer, f->infer_size);
	PEFT_CHECK_EQ_INT(peft_plan_arena_breakdown(&plan, &b), PEFT_OK);
	PEFT_CHECK_EQ_INT(b.cached_activations, f->cached_activations);
	PEFT_CHECK_EQ_INT(b.gradients, f->gradients);
	PEFT_CHECK_EQ_INT(b.parameters, f->parameters);
	PEFT_CHECK_EQ_INT(b.optimizer_state, f->optimizer_state);
	PEFT_CHECK_EQ_INT(b.scratch, f->scratch);
	PEFT_CHECK_EQ_INT(b.total, train);
	/* One byte short of the arena is refused; the exact size works. */
	PEFT_CHECK_EQ_INT(peft_trainer_init(&t, &plan, PEFT_MODE_TRAIN, arena, train - 1),
			  PEFT_ERR_BUFFER_TOO_SMALL);
	PEFT_CHECK_EQ_INT(peft_trainer_init(&t, &plan, PEFT_MODE_TRAIN, arena, ARENA_BYTES),
			  PEFT_OK);
	PEFT_CHECK_EQ_INT(peft_trainer_arena_high_water(&t, &hw), PEFT_OK);
	PEFT_CHECK(hw > 0 && hw <= train);
	exercise(&plan);
	/* Misaligned model and blob bases. */
	PEFT_CHECK_EQ_INT(peft_plan_load(&plan, blob, f->plan_len, model + 1, f->model_len - 1),
			  PEFT_ERR_PLAN_ALIGNMENT);
	PEFT_CHECK_EQ_INT(peft_plan_load(&plan, blob + 2, f->plan_len - 2, model, f->model_len),
			  PEFT_ERR_PLAN_ALIGNMENT);
	PEFT_CHECK_EQ_INT(peft_plan_load(NULL, blob, f->plan_len, model, f->model_len),
			  PEFT_ERR_ARG);
}

/* Every bit of the 16 bytes that the CRC does not cover has its own check. */
static void check_header_bits(const peft_plan_fixture *f)
{
	peft_plan plan;

	for (uint32_t byte = 0; byte < 16u; byte++) {
		for (uint32_t bit = 0; bit < 8u; bit++) {
			reset(f);
			blob[byte] ^= (uint8_t)(1u << bit);
			peft_status expected = PEFT_ERR_PLAN_CRC;

			if (byte < 4u) {
				expected = PEFT_ERR_PLAN_MAGIC;
			} else if (byte < 6u) {
				expected = PEFT_ERR_PLAN_VERSION;
			} else if (byte < 8u) {
				expected = PEFT_ERR_PLAN_LENGTH;
			} else if (byte < 12u) {
				const uint32_t total = rd32(blob + 8);

				expected = total > f->plan_len ? PEFT_ERR_PLAN_TRUNCATED
					   : total < HEADER    ? PEFT_ERR_PLAN_LENGTH
							       : PEFT_ERR_PLAN_CRC;
			}
			PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), expected);
		}
	}
}

static void check_truncations(const peft_plan_fixture *f)
{
	peft_plan plan;

	reset(f);
	for (size_t len = 0; len < f->plan_len; len++) {
		PEFT_CHECK_EQ_INT(load(f, len, &plan), PEFT_ERR_PLAN_TRUNCATED);
	}
}

/* Edit one 32-bit word (or byte), re-sign, expect a code. */
static void expect_word(const peft_plan_fixture *f, size_t at, uint32_t value, peft_status code)
{
	peft_plan plan;

	reset(f);
	wr32(blob + at, value);
	resign(f->plan_len);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), code);
}

static void expect_byte(const peft_plan_fixture *f, size_t at, uint8_t value, peft_status code)
{
	peft_plan plan;

	reset(f);
	blob[at] = value;
	resign(f->plan_len);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), code);
}

static void check_fields(const peft_plan_fixture *f)
{
	peft_plan plan;
	const size_t L0 = layer_at(f, 0);
	const size_t T0 = HEADER;

	/* Version and lengths. */
	reset(f);
	blob[4] = 2;
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_VERSION);
	expect_word(f, 120, TENSOR_REC + 4u, PEFT_ERR_PLAN_LENGTH);
	/* The plan belongs to another model. */
	reset(f);
	PEFT_CHECK_EQ_INT(peft_plan_load(&plan, blob, f->plan_len, model, f->model_len - 4),
			  PEFT_ERR_PLAN_MODEL_MISMATCH);
	reset(f);
	model[f->model_len - 1] ^= 1u;
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_MODEL_MISMATCH);
	/* Header fields. */
	expect_byte(f, 34, 2, PEFT_ERR_PLAN_FIELD);           /* act cache */
	expect_byte(f, 35, 7, PEFT_ERR_PLAN_FIELD);           /* optimizer */
	expect_word(f, 40, 0xbf800000u, PEFT_ERR_PLAN_FIELD); /* lr = -1 */
	expect_word(f, 32, 99u, PEFT_ERR_PLAN_FIELD);         /* num_classes */
	/* Tensor fields. */
	expect_word(f, T0 + 0, 0u, PEFT_ERR_PLAN_FIELD);         /* h = 0 */
	expect_word(f, T0 + 12, 0x7fc00000u, PEFT_ERR_PLAN_FIELD); /* scale NaN */
	expect_word(f, T0 + 16, 300u, PEFT_ERR_PLAN_FIELD);      /* zero point */
	/* Layer fields. */
	expect_byte(f, L0 + 0, 99, PEFT_ERR_PLAN_FIELD);  /* op */
	expect_byte(f, L0 + 1, 7, PEFT_ERR_PLAN_FIELD);   /* activation */
	expect_byte(f, L0 + 2, 64, PEFT_ERR_PLAN_FIELD);  /* unknown method bit */
	expect_byte(f, L0 + 8, 5, PEFT_ERR_PLAN_FIELD);   /* input after the layer */
	expect_word(f, L0 + 20, 2u, PEFT_ERR_PLAN_FIELD); /* kernel_h vs shapes */
	/* Weight references. */
	expect_word(f, L0 + 44, (uint32_t)f->model_len, PEFT_ERR_PLAN_MODEL_OFFSET);
	expect_word(f, L0 + 52, 0xFFFFFFF0u, PEFT_ERR_PLAN_MODEL_OFFSET);
	expect_word(f, L0 + 52, rd32(f->plan + L0 + 52) + 2u, PEFT_ERR_PLAN_ALIGNMENT);
	expect_word(f, L0 + 48, rd32(f->plan + L0 + 48) + 1u, PEFT_ERR_PLAN_FIELD);
	/* Arena offsets: one stored buffer moved, or a region size changed. */
	expect_word(f, L0 + 80 + 4, rd32(f->plan + L0 + 80 + 4) + 16u, PEFT_ERR_PLAN_ARENA_OFFSET);
	expect_word(f, 72, rd32(f->plan + 72) + 16u, PEFT_ERR_PLAN_ARENA_OFFSET);
	expect_word(f, 96, rd32(f->plan + 96) - 16u, PEFT_ERR_PLAN_ARENA_OFFSET);
	expect_word(f, T0 + 32, rd32(f->plan + T0 + 32) + 16u, PEFT_ERR_PLAN_ARENA_OFFSET);
	expect_word(f, 68, rd32(f->plan + 68) + 16u, PEFT_ERR_PLAN_ARENA_OFFSET);
}

/* A correctly signed plan whose tensor is 228806497 x 48920869 x 1648: the
 * product wraps to 48 in 32 and in 64 bits, which the old element-count check
 * accepted. Every dimension is bounded before any multiplication now. */
static void check_shape_bounds(const peft_plan_fixture *f)
{
	const size_t T0 = HEADER;
	const size_t TL = HEADER + (size_t)(f->num_tensors - 1) * TENSOR_REC;
	const uint32_t wrap[3] = {228806497u, 48920869u, 1648u};
	peft_plan plan;

	PEFT_CHECK((uint32_t)((uint64_t)wrap[0] * wrap[1] * wrap[2]) == 48u);
	for (size_t at = 0; at < 2; at++) {
		const size_t t = at == 0 ? T0 : TL;

		reset(f);
		for (int d = 0; d < 3; d++) {
			wr32(blob + t + 4u * (uint32_t)d, wrap[d]);
		}
		resign(f->plan_len);
		PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_SHAPE);
	}
	/* One dimension above 2^24; two whose product wraps int32 to 0; the bound itself. */
	expect_word(f, T0 + 8, (1u << 24) + 1u, PEFT_ERR_PLAN_SHAPE);
	reset(f);
	wr32(blob + T0 + 0, 65536u);
	wr32(blob + T0 + 4, 65536u);
	resign(f->plan_len);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_SHAPE);
	reset(f);
	wr32(blob + T0 + 0, 4096u);
	wr32(blob + T0 + 4, 4096u);
	wr32(blob + T0 + 8, 2u);
	resign(f->plan_len);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_SHAPE);
	/* A weight count beyond the bound is a shape error, not a wrapped match. */
	expect_word(f, layer_at(f, 0) + 48, 0xFFFFFFF0u, PEFT_ERR_PLAN_SHAPE);
	/* Negative dimensions stay field errors. */
	expect_word(f, T0 + 4, 0x80000000u, PEFT_ERR_PLAN_FIELD);
}

int main(void)
{
	PEFT_CHECK(sizeof(peft_plan) <= 512u); /* scripts/micropeft/runtime.py _PLAN_BYTES */
	for (size_t i = 0; i < PEFT_PLAN_FIXTURE_COUNT; i++) {
		const peft_plan_fixture *f = &peft_plan_fixtures[i];

		check_valid(f);
		check_header_bits(f);
		check_truncations(f);
		check_fields(f);
		check_shape_bounds(f);
	}
	printf("test_plan_checks: ok\n");
	return 0;
}
