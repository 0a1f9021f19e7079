/*
 * Plan and image validation: the demo model+plan container and dataset blob
 * written by `python tools/golden.py` load, the arena sizes equal the
 * Python planner's (golden_plan.h), and every corruption gives its own code.
 */
#include <string.h>

#include <zephyr/ztest.h>

#include "peft/peft_plan.h"
#include "peft/peft_crc32.h"
#include "peft/storage/peft_images.h"
#include "peft_ztest.h"

#include "golden_plan.h"

static const uint8_t container[] __aligned(16) = {
#include "demo_model.inc"
};

static const uint8_t dataset[] __aligned(16) = {
#include "demo_dataset.inc"
};

/* Writable copies for corruption (aligned like the originals). */
static uint8_t buf[sizeof(container) + 16] __aligned(16);
static uint8_t model_copy[sizeof(container)] __aligned(16);
static uint8_t data_buf[sizeof(dataset)] __aligned(16);

static struct peft_model_image img;
static peft_plan plan;

static void *setup(void)
{
	zassert_equal(peft_model_image_parse(container, sizeof(container), &img), PEFT_IMAGE_OK);
	return NULL;
}

static uint8_t *plan_copy(void)
{
	memcpy(buf, img.plan, img.plan_len);
	return buf;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

ZTEST(peft_plan, test_arena_size_equals_planner)
{
	size_t train = 0, infer = 0, params = 0;
	int32_t classes = 0;
	peft_arena_breakdown b;

	PEFT_ASSERT_OK(peft_plan_load(&plan, img.plan, img.plan_len, img.model, img.model_len));
	PEFT_ASSERT_OK(peft_plan_arena_size(&plan, PEFT_MODE_TRAIN, &train));
	PEFT_ASSERT_OK(peft_plan_arena_size(&plan, PEFT_MODE_INFER, &infer));
	PEFT_ASSERT_OK(peft_plan_arena_breakdown(&plan, &b));
	PEFT_ASSERT_OK(peft_plan_trainable_params(&plan, &params));
	PEFT_ASSERT_OK(peft_plan_num_classes(&plan, &classes));
	zassert_equal(train, PLAN_TRAIN_ARENA, "train arena %u", (unsigned)train);
	zassert_equal(infer, PLAN_INFER_ARENA, "infer arena %u", (unsigned)infer);
	zassert_equal(params, PLAN_TRAINABLE_PARAMS);
	zassert_equal(classes, PLAN_NUM_CLASSES);
	zassert_equal(b.cached_activations, PLAN_BREAKDOWN_CACHED_ACTIVATIONS);
	zassert_equal(b.gradients, PLAN_BREAKDOWN_GRADIENTS);
	zassert_equal(b.parameters, PLAN_BREAKDOWN_PARAMETERS);
	zassert_equal(b.optimizer_state, PLAN_BREAKDOWN_OPTIMIZER_STATE);
	zassert_equal(b.scratch, PLAN_BREAKDOWN_SCRATCH);
	zassert_equal(b.total, PLAN_BREAKDOWN_TOTAL);
}

ZTEST(peft_plan, test_corrupted_plans_give_their_codes)
{
	uint8_t *p;

	p = plan_copy();
	p[0] ^= 0xFF;
	zassert_equal(peft_plan_load(&plan, p, img.plan_len, img.model, img.model_len),
		      PEFT_ERR_PLAN_MAGIC);

	p = plan_copy();
	p[4] = 99; /* format version */
	zassert_equal(peft_plan_load(&plan, p, img.plan_len, img.model, img.model_len),
		      PEFT_ERR_PLAN_VERSION);

	p = plan_copy();
	p[img.plan_len - 1] ^= 0x01; /* a bit of the last layer record */
	zassert_equal(peft_plan_load(&plan, p, img.plan_len, img.model, img.model_len),
		      PEFT_ERR_PLAN_CRC);

	p = plan_copy();
	zassert_equal(peft_plan_load(&plan, p, 40, img.model, img.model_len),
		      PEFT_ERR_PLAN_TRUNCATED);
	zassert_equal(peft_plan_load(&plan, p, img.plan_len - 4, img.model, img.model_len),
		      PEFT_ERR_PLAN_TRUNCATED);

	/* A plan for another model: same length, one weight byte changed. */
	memcpy(model_copy, img.model, img.model_len);
	model_copy[img.model_len - 8] ^= 0x01;
	zassert_equal(peft_plan_load(&plan, img.plan, img.plan_len, model_copy, img.model_len),
		      PEFT_ERR_PLAN_MODEL_MISMATCH);

	/* Not 4-byte aligned. */
	memcpy(buf + 1, img.plan, img.plan_len);
	zassert_equal(peft_plan_load(&plan, buf + 1, img.plan_len, img.model, img.model_len),
		      PEFT_ERR_PLAN_ALIGNMENT);

	zassert_equal(peft_plan_load(NULL, img.plan, img.plan_len, img.model, img.model_len),
		      PEFT_ERR_ARG);
}

ZTEST(peft_plan, test_method_not_compiled_is_refused)
{
	zassert_false(IS_ENABLED(CONFIG_PEFT_METHOD_SCALE_SHIFT), "the suite must leave it out");
	memcpy(buf, plan_scale_shift, sizeof(plan_scale_shift));
	zassert_equal(
		peft_plan_load(&plan, buf, sizeof(plan_scale_shift), img.model, img.model_len),
		PEFT_ERR_PLAN_METHOD_NOT_COMPILED);
}

ZTEST(peft_plan, test_model_container_checks)
{
	struct peft_model_image m;

	/* Erased flash, then wrong magic, version, CRC, truncation, model CRC. */
	memset(buf, 0xFF, sizeof(buf));
	zassert_equal(peft_model_image_parse(buf, sizeof(container), &m), PEFT_IMAGE_ERASED);
	memcpy(buf, container, sizeof(container));
	buf[1] ^= 0xFF;
	zassert_equal(peft_model_image_parse(buf, sizeof(container), &m), PEFT_IMAGE_MAGIC);
	memcpy(buf, container, sizeof(container));
	buf[4] = 2;
	zassert_equal(peft_model_image_parse(buf, sizeof(container), &m), PEFT_IMAGE_VERSION);
	memcpy(buf, container, sizeof(container));
	buf[sizeof(container) - 1] ^= 0x40;
	zassert_equal(peft_model_image_parse(buf, sizeof(container), &m), PEFT_IMAGE_CRC);
	zassert_equal(peft_model_image_parse(container, sizeof(container) - 1, &m),
		      PEFT_IMAGE_TRUNCATED);
	zassert_equal(peft_model_image_parse(container, 10, &m), PEFT_IMAGE_TRUNCATED);
	/* A model offset that is not 16-byte aligned (CRC recomputed: a valid but wrong header). */
	memcpy(buf, container, sizeof(container));
	put32(buf + 16, 68);
	put32(buf + 12, peft_crc32_update(0, buf + 16, sizeof(container) - 16));
	zassert_equal(peft_model_image_parse(buf, sizeof(container), &m), PEFT_IMAGE_FIELD);
	zassert_equal(peft_model_image_parse(container, sizeof(container), &m), PEFT_IMAGE_OK);
	zassert_equal(m.model_len, img.model_len);
}

ZTEST(peft_plan, test_dataset_checks)
{
	struct peft_dataset_image d;

	zassert_equal(peft_dataset_image_parse(dataset, sizeof(dataset), &d), PEFT_IMAGE_OK);
	zassert_equal(d.num_classes, PLAN_NUM_CLASSES);
	zassert_equal(d.sample_bytes, (uint32_t)d.h * d.w * d.c);
	zassert_true(d.n_train > 0 && d.n_test > 0);

	memset(data_buf, 0xFF, sizeof(data_buf));
	zassert_equal(peft_dataset_image_parse(data_buf, sizeof(data_buf), &d), PEFT_IMAGE_ERASED);
	memcpy(data_buf, dataset, sizeof(dataset));
	data_buf[0] = 'X';
	zassert_equal(peft_dataset_image_parse(data_buf, sizeof(data_buf), &d), PEFT_IMAGE_MAGIC);
	memcpy(data_buf, dataset, sizeof(dataset));
	data_buf[4] = 7;
	zassert_equal(peft_dataset_image_parse(data_buf, sizeof(data_buf), &d), PEFT_IMAGE_VERSION);
	memcpy(data_buf, dataset, sizeof(dataset));
	data_buf[100] ^= 0x01; /* a sample byte */
	zassert_equal(peft_dataset_image_parse(data_buf, sizeof(data_buf), &d), PEFT_IMAGE_CRC);
	zassert_equal(peft_dataset_image_parse(dataset, sizeof(dataset) / 2, &d),
		      PEFT_IMAGE_TRUNCATED);
	/* A label outside the classes, CRC recomputed. */
	memcpy(data_buf, dataset, sizeof(dataset));
	const uint32_t labels = data_buf[48] | (data_buf[49] << 8) | (data_buf[50] << 16) |
				((uint32_t)data_buf[51] << 24);
	data_buf[labels] = 200;
	put32(data_buf + 12, peft_crc32_update(0, data_buf + 16, sizeof(dataset) - 16));
	zassert_equal(peft_dataset_image_parse(data_buf, sizeof(data_buf), &d), PEFT_IMAGE_FIELD);
}

ZTEST_SUITE(peft_plan, NULL, setup, NULL, NULL, NULL);
