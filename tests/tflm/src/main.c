/*
 * TFLM glue (modules/tflite-micro): a tiny int8 prefix (pad, conv, depthwise,
 * add, 1x1 conv, mean, fully connected) runs in TFLM on the target and must
 * give TFLite's own output for the same input (golden_tflm.h, written by
 * `python tools/golden.py`), and a corrupted model must be refused.
 */
#include <stdlib.h>
#include <string.h>

#include <zephyr/ztest.h>

#include "peft_tflm.h"
#include "peft_ztest.h"

#include "golden_tflm.h"

/* TFLM's kernels and TFLite's reference kernels may round one step apart. */
#define MAX_DIFF 1

static uint8_t arena[16384] __aligned(16);
static uint8_t bad_model[sizeof(tflm_model)] __aligned(16);
static int8_t out[TFLM_OUT_N];

ZTEST(peft_tflm, test_prefix_matches_tflite)
{
	peft_tflm ctx;

	PEFT_ASSERT_OK(peft_tflm_init(&ctx, tflm_model, sizeof(tflm_model), arena, sizeof(arena)));
	zassert_equal(ctx.in.h, TFLM_IN_H);
	zassert_equal(ctx.in.w, TFLM_IN_W);
	zassert_equal(ctx.in.c, TFLM_IN_C);
	zassert_equal(ctx.out.bytes, TFLM_OUT_N);
	zassert_equal(ctx.out.zero_point, TFLM_OUT_ZP);
	zassert_true(ctx.out.scale == TFLM_OUT_SCALE, "output scale differs");
	zassert_true(ctx.arena_used > 0 && ctx.arena_used <= sizeof(arena));

	/* Twice: the interpreter must be reusable without re-initialisation. */
	for (int round = 0; round < 2; round++) {
		memset(out, 0, sizeof(out));
		PEFT_ASSERT_OK(
			peft_tflm_run_s8(&ctx, tflm_input, sizeof(tflm_input), out, sizeof(out)));
		for (int i = 0; i < TFLM_OUT_N; i++) {
			zassert_true(abs(out[i] - tflm_output[i]) <= MAX_DIFF,
				     "out[%d] = %d, TFLite %d", i, out[i], tflm_output[i]);
		}
	}
	zassert_equal(peft_tflm_run_s8(&ctx, tflm_input, sizeof(tflm_input) - 1, out, sizeof(out)),
		      PEFT_ERR_ARG);

	/* In place: TFLM's output tensor holds the same values as TFLite's. */
	const int8_t *view = NULL;

	PEFT_ASSERT_OK(peft_tflm_run_s8_view(&ctx, tflm_input, sizeof(tflm_input), &view));
	zassert_not_null(view);
	for (int i = 0; i < TFLM_OUT_N; i++) {
		zassert_true(abs(view[i] - tflm_output[i]) <= MAX_DIFF, "view[%d] = %d, TFLite %d",
			     i, view[i], tflm_output[i]);
	}
	zassert_equal(peft_tflm_run_s8_view(&ctx, tflm_input, sizeof(tflm_input) - 1, &view),
		      PEFT_ERR_ARG);
}

/* The same model with a Dense head, whose weights the converter quantizes per
 * channel: TFLM releases that read them must match TFLite; older ones (the
 * one in Zephyr 3.4) must refuse the model rather than compute it wrongly. */
ZTEST(peft_tflm, test_per_channel_fully_connected)
{
	peft_tflm ctx;
	static int8_t fc_out[TFLM_FC_OUT_N];
	peft_status status =
		peft_tflm_init(&ctx, tflm_fc_model, sizeof(tflm_fc_model), arena, sizeof(arena));

#if __has_include("tensorflow/lite/micro/micro_log.h")
	PEFT_ASSERT_OK(status);
	PEFT_ASSERT_OK(peft_tflm_run_s8(&ctx, tflm_fc_input, sizeof(tflm_fc_input), fc_out,
					sizeof(fc_out)));
	for (int i = 0; i < TFLM_FC_OUT_N; i++) {
		zassert_true(abs(fc_out[i] - tflm_fc_output[i]) <= MAX_DIFF,
			     "out[%d] = %d, TFLite %d", i, fc_out[i], tflm_fc_output[i]);
	}
#else
	zassert_equal(status, PEFT_ERR_UNSUPPORTED, "%s", peft_status_str(status));
	zassert_equal(ctx.error, PEFT_TFLM_ERROR_FC_PER_CHANNEL);
	ARG_UNUSED(fc_out);
#endif
}

ZTEST(peft_tflm, test_rejects_bad_models)
{
	peft_tflm ctx;

	/* Not a flatbuffer: the verifier refuses it before TFLM reads it. */
	memset(bad_model, 0x5a, sizeof(bad_model));
	zassert_equal(peft_tflm_init(&ctx, bad_model, sizeof(bad_model), arena, sizeof(arena)),
		      PEFT_ERR_PLAN_FIELD);
	zassert_equal(ctx.error, PEFT_TFLM_ERROR_MODEL);

	/* Truncated: offsets point past the end. */
	zassert_equal(
		peft_tflm_init(&ctx, tflm_model, sizeof(tflm_model) / 2, arena, sizeof(arena)),
		PEFT_ERR_PLAN_FIELD);
	zassert_equal(ctx.error, PEFT_TFLM_ERROR_MODEL);

	/* Valid model, arena too small for its tensors. */
	zassert_equal(peft_tflm_init(&ctx, tflm_model, sizeof(tflm_model), arena, 1024),
		      PEFT_ERR_BUFFER_TOO_SMALL);
	zassert_equal(ctx.error, PEFT_TFLM_ERROR_ARENA);

	/* Misaligned model pointer. */
	memcpy(bad_model, tflm_model, sizeof(tflm_model));
	zassert_equal(
		peft_tflm_init(&ctx, bad_model + 1, sizeof(tflm_model) - 1, arena, sizeof(arena)),
		PEFT_ERR_ARG);
}

ZTEST_SUITE(peft_tflm, NULL, NULL, NULL, NULL, NULL);
