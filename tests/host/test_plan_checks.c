/* The plan reader's checks, one expected status per corruption, under ASan +
 * UBSan in build/asan: every header bit flipped, every truncation, specific
 * field edits re-signed with a fresh CRC (so that the field check, not the CRC
 * check, answers), and shapes whose element counts overflow. Random and
 * structural mutations are the libFuzzer harnesses' job (tests/fuzz). The
 * fixtures and their arena figures come from the Python planner
 * (tests/host/gen_plan_fixtures.py). */
#include <stdint.h>
#include <string.h>

#include "peft/peft_bytes.h"
#include "peft/peft_crc32.h"
#include "peft/peft_formats.h"
#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft_plan_fixtures.h"
#include "peft_test.h"

#define MAX_BLOB    8192
#define MAX_MODEL   8192
#define ARENA_BYTES 65536

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

static void resign(size_t len)
{
	const uint32_t total = peft_rd32(blob + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);

	peft_wr32(blob + PEFT_BLOB_HDR_OFF_CRC,
		  peft_crc32_update(0, blob + PEFT_BLOB_CRC_START, total - PEFT_BLOB_CRC_START));
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
	return PEFT_PLAN_HEADER_SIZE + (size_t)f->num_tensors * PEFT_PLAN_TENSOR_SIZE +
	       (size_t)k * PEFT_PLAN_LAYER_SIZE;
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
		PEFT_CHECK_EQ_INT(peft_trainer_init(&t, plan, PEFT_MODE_TRAIN, arena, need),
				  PEFT_OK);
		peft_status st = peft_trainer_train_sample_s8(&t, input, 0, &loss);

		PEFT_CHECK(st == PEFT_OK || st == PEFT_ERR_NUMERIC || st == PEFT_ERR_DIVERGED);
		st = peft_trainer_step(&t);
		PEFT_CHECK(st == PEFT_OK || st == PEFT_ERR_NUMERIC || st == PEFT_ERR_DIVERGED);
		PEFT_CHECK_EQ_INT(peft_trainer_arena_high_water(&t, &hw), PEFT_OK);
		PEFT_CHECK(hw <= need);
	}
	PEFT_CHECK_EQ_INT(peft_plan_arena_size(plan, PEFT_MODE_INFER, &need), PEFT_OK);
	if (need <= ARENA_BYTES) {
		PEFT_CHECK_EQ_INT(peft_trainer_init(&t, plan, PEFT_MODE_INFER, arena, need),
				  PEFT_OK);
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

	for (uint32_t byte = 0; byte < PEFT_BLOB_CRC_START; byte++) {
		for (uint32_t bit = 0; bit < 8u; bit++) {
			reset(f);
			blob[byte] ^= (uint8_t)(1u << bit);
			peft_status expected = PEFT_ERR_PLAN_CRC;

			if (byte < PEFT_BLOB_HDR_OFF_VERSION) {
				expected = PEFT_ERR_PLAN_MAGIC;
			} else if (byte < PEFT_BLOB_HDR_OFF_HEADER_SIZE) {
				expected = PEFT_ERR_PLAN_VERSION;
			} else if (byte < PEFT_BLOB_HDR_OFF_TOTAL_LENGTH) {
				expected = PEFT_ERR_PLAN_LENGTH;
			} else if (byte < PEFT_BLOB_HDR_OFF_CRC) {
				const uint32_t total =
					peft_rd32(blob + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);

				expected = total > f->plan_len             ? PEFT_ERR_PLAN_TRUNCATED
					   : total < PEFT_PLAN_HEADER_SIZE ? PEFT_ERR_PLAN_LENGTH
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
	peft_wr32(blob + at, value);
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
	const size_t T0 = PEFT_PLAN_HEADER_SIZE;
	const size_t H = 0;

	/* Version and lengths. */
	reset(f);
	blob[PEFT_BLOB_HDR_OFF_VERSION] =
		PEFT_PLAN_VERSION - 1u; /* a plan of the previous format */
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_VERSION);
	expect_word(f, H + PEFT_PLAN_HDR_OFF_TENSOR_RECORD_SIZE, PEFT_PLAN_TENSOR_SIZE + 4u,
		    PEFT_ERR_PLAN_LENGTH);
	expect_word(f, H + PEFT_PLAN_HDR_OFF_BUFFER_RECORD_SIZE, PEFT_PLAN_BUFFER_SIZE + 4u,
		    PEFT_ERR_PLAN_LENGTH);
	/* The plan belongs to another model. */
	reset(f);
	PEFT_CHECK_EQ_INT(peft_plan_load(&plan, blob, f->plan_len, model, f->model_len - 4),
			  PEFT_ERR_PLAN_MODEL_MISMATCH);
	reset(f);
	model[f->model_len - 1] ^= 1u;
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_MODEL_MISMATCH);
	/* Header fields. */
	expect_byte(f, H + PEFT_PLAN_HDR_OFF_ACT_CACHE, 2, PEFT_ERR_PLAN_FIELD);
	expect_byte(f, H + PEFT_PLAN_HDR_OFF_OPTIMIZER, 7, PEFT_ERR_PLAN_FIELD);
	expect_word(f, H + PEFT_PLAN_HDR_OFF_LR, 0xbf800000u, PEFT_ERR_PLAN_FIELD); /* lr = -1 */
	/* num_classes = 99 (the word also zeroes act_cache and optimizer) */
	expect_word(f, H + PEFT_PLAN_HDR_OFF_NUM_CLASSES, 99u, PEFT_ERR_PLAN_FIELD);
	/* A schedule longer than floats count exactly (peft_optimizer_lr). */
	expect_word(f, H + PEFT_PLAN_HDR_OFF_LR_DECAY_STEPS, 1u << 24, PEFT_ERR_PLAN_FIELD);
	/* Plan flags: an unknown bit; the int8 path's flag decides
	 * its scratch buffers, so clearing it breaks the layout of a plan that uses it. */
	expect_word(f, H + PEFT_PLAN_HDR_OFF_FLAGS, (uint32_t)PEFT_PLAN_FLAGS_ALL + 1u,
		    PEFT_ERR_PLAN_FIELD);
	if (f->uses_int8_backward) {
		expect_word(f, H + PEFT_PLAN_HDR_OFF_FLAGS, 0u, PEFT_ERR_PLAN_ARENA_OFFSET);
	}
	/* Tensor fields. */
	expect_word(f, T0 + PEFT_PLAN_TENSOR_OFF_H, 0u, PEFT_ERR_PLAN_FIELD);
	expect_word(f, T0 + PEFT_PLAN_TENSOR_OFF_SCALE, 0x7fc00000u, PEFT_ERR_PLAN_FIELD); /* NaN */
	expect_word(f, T0 + PEFT_PLAN_TENSOR_OFF_ZERO_POINT, 300u, PEFT_ERR_PLAN_FIELD);
	/* Layer fields. */
	expect_byte(f, L0 + PEFT_PLAN_LAYER_OFF_OP, 99, PEFT_ERR_PLAN_FIELD);
	expect_byte(f, L0 + PEFT_PLAN_LAYER_OFF_ACTIVATION, 7, PEFT_ERR_PLAN_FIELD);
	/* The first bit above every method (methods is a u16: its high byte). */
	expect_byte(f, L0 + PEFT_PLAN_LAYER_OFF_METHODS + 1u,
		    (uint8_t)((PEFT_METHOD_ALL + 1u) >> 8), PEFT_ERR_PLAN_FIELD);
	expect_byte(f, L0 + PEFT_PLAN_LAYER_OFF_INPUT, 5,
		    PEFT_ERR_PLAN_FIELD); /* after the layer */
	expect_word(f, L0 + PEFT_PLAN_LAYER_OFF_KERNEL_H, 2u, PEFT_ERR_PLAN_FIELD); /* vs shapes */
	/* Weight references. */
	const size_t W = L0 + PEFT_PLAN_LAYER_OFF_WEIGHTS;

	expect_word(f, W + PEFT_PLAN_REF_OFF_OFFSET, (uint32_t)f->model_len,
		    PEFT_ERR_PLAN_MODEL_OFFSET);
	expect_word(f, W + PEFT_PLAN_REF_OFF_SCALE_OFFSET, 0xFFFFFFF0u, PEFT_ERR_PLAN_MODEL_OFFSET);
	expect_word(f, W + PEFT_PLAN_REF_OFF_SCALE_OFFSET,
		    peft_rd32(f->plan + W + PEFT_PLAN_REF_OFF_SCALE_OFFSET) + 2u,
		    PEFT_ERR_PLAN_ALIGNMENT);
	expect_word(f, W + PEFT_PLAN_REF_OFF_COUNT,
		    peft_rd32(f->plan + W + PEFT_PLAN_REF_OFF_COUNT) + 1u, PEFT_ERR_PLAN_FIELD);
	/* Arena offsets: one stored buffer moved, or a region size changed. */
	const size_t B0 = layer_at(f, f->num_layers);
	const size_t gamma_param = L0 + PEFT_PLAN_LAYER_OFF_PARAM + 4u * PEFT_PARAM_GAMMA;
	const size_t region = H + PEFT_PLAN_HDR_OFF_TRAIN_REGION_SIZE;
	const size_t moved[] = {
		gamma_param, region + 4u * PEFT_TRAIN_PARAMS, region + 4u * PEFT_TRAIN_WORK,
		B0 + PEFT_PLAN_BUFFER_OFF_ARENA_OFFSET, B0 + PEFT_PLAN_BUFFER_OFF_SIZE};

	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		expect_word(f, moved[i], peft_rd32(f->plan + moved[i]) + 16u,
			    PEFT_ERR_PLAN_ARENA_OFFSET);
	}
	expect_word(f, H + PEFT_PLAN_HDR_OFF_INFER_SIZE,
		    peft_rd32(f->plan + H + PEFT_PLAN_HDR_OFF_INFER_SIZE) - 16u,
		    PEFT_ERR_PLAN_ARENA_OFFSET);
	/* A buffer kind this runtime does not know. */
	expect_byte(f, B0 + PEFT_PLAN_BUFFER_OFF_KIND, 99, PEFT_ERR_PLAN_BUFFER_KIND);
	expect_byte(f, B0 + PEFT_PLAN_BUFFER_OFF_KIND, 0, PEFT_ERR_PLAN_BUFFER_KIND);
}

/* A correctly signed plan whose tensor is 228806497 x 48920869 x 1648: the
 * product wraps to 48 in 32 and in 64 bits, which the old element-count check
 * accepted. Every dimension is bounded before any multiplication now. */
static void check_shape_bounds(const peft_plan_fixture *f)
{
	const size_t T0 = PEFT_PLAN_HEADER_SIZE;
	const size_t TL = T0 + (size_t)(f->num_tensors - 1) * PEFT_PLAN_TENSOR_SIZE;
	const uint32_t wrap[3] = {228806497u, 48920869u, 1648u};
	peft_plan plan;

	PEFT_CHECK((uint32_t)((uint64_t)wrap[0] * wrap[1] * wrap[2]) == 48u);
	for (size_t at = 0; at < 2; at++) {
		const size_t t = at == 0 ? T0 : TL;

		reset(f);
		for (int d = 0; d < 3; d++) {
			peft_wr32(blob + t + PEFT_PLAN_TENSOR_OFF_H + 4u * (uint32_t)d, wrap[d]);
		}
		resign(f->plan_len);
		PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_SHAPE);
	}
	/* One dimension above 2^24; two whose product wraps int32 to 0; the bound itself. */
	expect_word(f, T0 + PEFT_PLAN_TENSOR_OFF_C, (1u << 24) + 1u, PEFT_ERR_PLAN_SHAPE);
	reset(f);
	peft_wr32(blob + T0 + PEFT_PLAN_TENSOR_OFF_H, 65536u);
	peft_wr32(blob + T0 + PEFT_PLAN_TENSOR_OFF_W, 65536u);
	resign(f->plan_len);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_SHAPE);
	reset(f);
	peft_wr32(blob + T0 + PEFT_PLAN_TENSOR_OFF_H, 4096u);
	peft_wr32(blob + T0 + PEFT_PLAN_TENSOR_OFF_W, 4096u);
	peft_wr32(blob + T0 + PEFT_PLAN_TENSOR_OFF_C, 2u);
	resign(f->plan_len);
	PEFT_CHECK_EQ_INT(load(f, f->plan_len, &plan), PEFT_ERR_PLAN_SHAPE);
	/* A weight count beyond the bound is a shape error, not a wrapped match. */
	expect_word(f, layer_at(f, 0) + PEFT_PLAN_LAYER_OFF_WEIGHTS + PEFT_PLAN_REF_OFF_COUNT,
		    0xFFFFFFF0u, PEFT_ERR_PLAN_SHAPE);
	/* Negative dimensions stay field errors. */
	expect_word(f, T0 + PEFT_PLAN_TENSOR_OFF_W, 0x80000000u, PEFT_ERR_PLAN_FIELD);
}

int main(void)
{
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
