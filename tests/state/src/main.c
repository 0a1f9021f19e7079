/*
 * The storage library's two-slot state store (subsys/storage) on Zephyr's flash
 * simulator, through its flash_map adapter: resume picks the newest valid slot,
 * saves alternate slots, a newest state holding a NaN falls back to the older
 * slot, and a state saved for another plan is refused. Power cuts at every point
 * of a save are tested on the host (tests/host/storage, NOR-flash fake).
 */
#include <math.h>
#include <string.h>

#include <zephyr/ztest.h>

#include "peft/peft_crc32.h"
#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft/storage/peft_flash_area.h"
#include "peft/storage/peft_images.h"
#include "peft/storage/peft_state_store.h"
#include "peft_ztest.h"

#include "golden_plan.h"

static const uint8_t container[] __aligned(16) = {
#include "demo_model.inc"
};
static uint8_t other_plan_blob[sizeof(plan_scale_shift)] __aligned(16);

static uint8_t arena[PLAN_TRAIN_ARENA] __aligned(16);
static uint8_t state_buf[PEFT_STATE_STREAM_BUFFER] __aligned(4); /* as the sample's */
static uint8_t blob[4096] __aligned(4);
static float input[4096];
static float saved[2][PLAN_TRAINABLE_PARAMS];
static float now[PLAN_TRAINABLE_PARAMS];

static struct peft_model_image img;
static peft_plan plan;
static peft_trainer trainer;
static struct peft_flash_area slot0, slot1;

/* All trainable parameters, concatenated. */
static void params(float *out)
{
	int32_t n = 0, k = 0;

	zassert_equal(peft_trainer_param_count(&trainer, &n), PEFT_OK);
	for (int32_t i = 0; i < n; i++) {
		peft_param_info info;

		zassert_equal(peft_trainer_param_info(&trainer, i, &info), PEFT_OK);
		zassert_true(k + info.count <= PLAN_TRAINABLE_PARAMS);
		memcpy(out + k, info.data, sizeof(float) * (size_t)info.count);
		k += info.count;
	}
	zassert_equal(k, PLAN_TRAINABLE_PARAMS);
}

/* A few optimizer steps on deterministic pseudo-random inputs. */
static void train(uint32_t seed)
{
	peft_dims d;

	PEFT_ASSERT_OK(peft_plan_input_dims(&plan, &d));
	const int32_t n = d.h * d.w * d.c;

	zassert_true(n <= (int32_t)ARRAY_SIZE(input));
	for (int s = 0; s < 4; s++) {
		for (int32_t i = 0; i < n; i++) {
			seed = seed * 1664525u + 1013904223u;
			input[i] = (float)(seed >> 8) / 16777216.0f;
		}
		PEFT_ASSERT_OK(
			peft_trainer_train_sample_f32(&trainer, input, s % PLAN_NUM_CLASSES, NULL));
		PEFT_ASSERT_OK(peft_trainer_step(&trainer));
	}
}

/* A fresh trainer and store, as after a reset. */
static void reboot(struct peft_state_store *store, struct peft_state_slot_report rep[2],
		   peft_status want)
{
	PEFT_ASSERT_OK(peft_trainer_init(&trainer, &plan, PEFT_MODE_TRAIN, arena, sizeof(arena)));
	zassert_equal(peft_state_store_init(store, &slot0.flash, &slot1.flash, state_buf,
					    sizeof(state_buf)),
		      0);
	zassert_equal(peft_state_store_resume(store, &trainer, NULL, rep), want);
}

static void *setup(void)
{
	zassert_equal(peft_model_image_parse(container, sizeof(container), &img), PEFT_IMAGE_OK);
	PEFT_ASSERT_OK(peft_plan_load(&plan, img.plan, img.plan_len, img.model, img.model_len));
	zassert_equal(peft_flash_area_open(&slot0, FIXED_PARTITION_ID(peft_state0), "s0"), 0);
	zassert_equal(peft_flash_area_open(&slot1, FIXED_PARTITION_ID(peft_state1), "s1"), 0);
	return NULL;
}

static void erase_slots(void *fixture)
{
	ARG_UNUSED(fixture);
	zassert_equal(slot0.flash.erase(&slot0.flash, 0, slot0.flash.size), 0);
	zassert_equal(slot1.flash.erase(&slot1.flash, 0, slot1.flash.size), 0);
}

/* Two saves: seq 1 in slot 0 (params saved[0]), seq 2 in slot 1 (saved[1]). */
static void two_saves(struct peft_state_store *store)
{
	struct peft_state_slot_report rep[2];
	int slot = -1;

	reboot(store, rep, PEFT_ERR_STATE_MAGIC);
	zassert_true(rep[0].erased && rep[1].erased);
	train(1);
	zassert_equal(peft_state_store_save(store, &trainer, 1, &slot), 0);
	zassert_equal(slot, 0);
	params(saved[0]);
	train(2);
	zassert_equal(peft_state_store_save(store, &trainer, 2, &slot), 0);
	zassert_equal(slot, 1);
	params(saved[1]);
	zassert_true(memcmp(saved[0], saved[1], sizeof(saved[0])) != 0, "training changed nothing");
}

ZTEST(peft_state, test_resume_from_newest_slot)
{
	struct peft_state_store store;
	struct peft_state_slot_report rep[2];
	int slot = -1;

	two_saves(&store);
	reboot(&store, rep, PEFT_OK);
	params(now);
	zassert_true(memcmp(now, saved[1], sizeof(now)) == 0, "resumed from the wrong state");
	zassert_equal(store.current, 1);
	zassert_equal(store.meta.sequence, 2u);
	zassert_equal(store.meta.epoch, 2u);
	zassert_equal(rep[0].status, PEFT_OK);
	zassert_equal(rep[0].meta.sequence, 1u);

	/* The next save goes to the older slot (0) with sequence 3, and wins. */
	train(3);
	zassert_equal(peft_state_store_save(&store, &trainer, 3, &slot), 0);
	zassert_equal(slot, 0);
	params(saved[0]);
	reboot(&store, rep, PEFT_OK);
	zassert_equal(store.current, 0);
	zassert_equal(store.meta.sequence, 3u);
	params(now);
	zassert_true(memcmp(now, saved[0], sizeof(now)) == 0);
}

ZTEST(peft_state, test_newest_with_a_nan_falls_back_to_the_older_slot)
{
	struct peft_state_store store;
	struct peft_state_slot_report rep[2];
	size_t bytes = 0;
	const float nan = NAN;

	two_saves(&store);
	/* Slot 1 as a diverged save would have left it: a NaN parameter, CRC valid. */
	PEFT_ASSERT_OK(peft_trainer_state_size(&trainer, &bytes));
	zassert_true(bytes <= sizeof(blob));
	zassert_equal(slot1.flash.read(&slot1.flash, 0, blob, bytes), 0);
	memcpy(blob + PEFT_STATE_HEADER_SIZE, &nan, sizeof(nan));
	const uint32_t crc = peft_crc32_update(0, blob + 16, bytes - 16u);

	memcpy(blob + 12, &crc, sizeof(crc));
	const size_t len = ROUND_UP(bytes, slot1.flash.write_size);

	memset(blob + bytes, 0xFF, len - bytes);
	zassert_equal(slot1.flash.erase(&slot1.flash, 0, slot1.flash.size), 0);
	zassert_equal(slot1.flash.write(&slot1.flash, 0, blob, len), 0);

	reboot(&store, rep, PEFT_OK);
	zassert_equal(store.current, 0, "resumed from slot %d", store.current);
	zassert_true(rep[1].status != PEFT_OK || rep[1].run_status == PEFT_ERR_NUMERIC);
	params(now);
	zassert_true(memcmp(now, saved[0], sizeof(now)) == 0, "not the older state");
}

ZTEST(peft_state, test_state_of_another_plan_is_refused)
{
	struct peft_state_store store;
	static peft_plan other;
	struct peft_state_slot_report rep[2];

	two_saves(&store);
	memcpy(other_plan_blob, plan_scale_shift, sizeof(plan_scale_shift));
	PEFT_ASSERT_OK(peft_plan_load(&other, other_plan_blob, sizeof(other_plan_blob), img.model,
				      img.model_len));
	static uint8_t other_arena[16384] __aligned(16);
	size_t need = 0;

	PEFT_ASSERT_OK(peft_plan_arena_size(&other, PEFT_MODE_TRAIN, &need));
	zassert_true(need <= sizeof(other_arena));
	PEFT_ASSERT_OK(peft_trainer_init(&trainer, &other, PEFT_MODE_TRAIN, other_arena, need));
	zassert_equal(peft_state_store_init(&store, &slot0.flash, &slot1.flash, state_buf,
					    sizeof(state_buf)),
		      0);
	zassert_equal(peft_state_store_resume(&store, &trainer, NULL, rep),
		      PEFT_ERR_STATE_PLAN_MISMATCH);
	zassert_equal(rep[0].status, PEFT_ERR_STATE_PLAN_MISMATCH);
	zassert_equal(rep[1].status, PEFT_ERR_STATE_PLAN_MISMATCH);
	zassert_equal(store.current, -1);
}

ZTEST_SUITE(peft_state, NULL, setup, erase_slots, NULL, NULL);
