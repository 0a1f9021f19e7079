/* Soak: long training of random plans (the planner's random graphs of every
 * operator and method, both optimizers and caches, plus the hand-made
 * fixtures), at least 100,000 optimizer steps in all, meant for the ASan +
 * UBSan build. It checks after every epoch:
 *   - the arena high-water mark never passes the planned size (the arena is
 *     given spare canary bytes beyond it, so a write past the plan shows);
 *   - no loss and no parameter is NaN or infinite;
 *   - the state survives export -> fresh trainer -> import, and the trainer
 *     that took that round trip stays bit-identical to one that never did.
 * Samples are random int8 with fixed random labels; batches of 1 and 3. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft_plan_fixtures.h"
#include "peft_test.h"

#define TOTAL_STEPS 100000
#define SPARE 1024u
#define EPOCH_STEPS 125
#define SAMPLES 16

static uint32_t rng_state = 2463534242u;

static uint32_t xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

typedef struct {
	peft_trainer t;
	uint8_t *arena;
	size_t need;
} soak_trainer;

static void start(soak_trainer *s, const peft_plan *plan)
{
	PEFT_CHECK_EQ_INT(peft_plan_arena_size(plan, PEFT_MODE_TRAIN, &s->need), PEFT_OK);
	s->arena = aligned_alloc(16, s->need + SPARE);
	PEFT_CHECK(s->arena != NULL);
	PEFT_CHECK_EQ_INT(peft_trainer_init(&s->t, plan, PEFT_MODE_TRAIN, s->arena, s->need + SPARE),
			  PEFT_OK);
}

static void check_finite_params(const soak_trainer *s)
{
	int32_t count;

	PEFT_CHECK_EQ_INT(peft_trainer_param_count(&s->t, &count), PEFT_OK);
	for (int32_t i = 0; i < count; i++) {
		peft_param_info info;

		PEFT_CHECK_EQ_INT(peft_trainer_param_info(&s->t, i, &info), PEFT_OK);
		for (int32_t j = 0; j < info.count; j++) {
			PEFT_CHECK(isfinite(info.data[j]));
		}
	}
}

static void check_high_water(const soak_trainer *s)
{
	size_t hw;

	PEFT_CHECK_EQ_INT(peft_trainer_arena_high_water(&s->t, &hw), PEFT_OK);
	PEFT_CHECK(hw <= s->need);
}

/* Returns the number of steps taken (epochs * EPOCH_STEPS). */
static long soak_plan(const peft_plan_fixture *f, long steps)
{
	uint8_t *model = malloc(f->model_len);
	uint8_t *blob = malloc(f->plan_len);
	peft_plan plan;
	peft_dims d;

	PEFT_CHECK(model != NULL && blob != NULL);
	memcpy(model, f->model, f->model_len);
	memcpy(blob, f->plan, f->plan_len);
	PEFT_CHECK_EQ_INT(peft_plan_load(&plan, blob, f->plan_len, model, f->model_len), PEFT_OK);
	PEFT_CHECK_EQ_INT(peft_plan_input_dims(&plan, &d), PEFT_OK);
	const size_t n = (size_t)d.h * d.w * d.c;
	int8_t *x = malloc(n * SAMPLES);
	int32_t labels[SAMPLES];

	PEFT_CHECK(x != NULL);
	for (size_t i = 0; i < n * SAMPLES; i++) {
		x[i] = (int8_t)(xorshift() >> 24);
	}
	for (int i = 0; i < SAMPLES; i++) {
		labels[i] = (int32_t)(xorshift() % (uint32_t)plan.num_classes);
	}
	soak_trainer round_trip, reference;

	start(&round_trip, &plan);
	start(&reference, &plan);
	size_t state_size;

	PEFT_CHECK_EQ_INT(peft_trainer_state_size(&round_trip.t, &state_size), PEFT_OK);
	uint8_t *state = malloc(state_size);
	uint8_t *state_ref = malloc(state_size);

	PEFT_CHECK(state != NULL && state_ref != NULL);
	long taken = 0;

	for (uint32_t epoch = 1; taken < steps; epoch++) {
		for (int s = 0; s < EPOCH_STEPS; s++, taken++) {
			/* Mostly single samples; every eighth step accumulates three. */
			const int batch = s % 8 == 7 ? 3 : 1;

			for (int b = 0; b < batch; b++) {
				const int i = (int)(xorshift() % SAMPLES);
				float loss, loss_ref;

				PEFT_CHECK_EQ_INT(peft_trainer_train_sample_s8(&round_trip.t, x + n * i,
									      labels[i], &loss),
						  PEFT_OK);
				PEFT_CHECK_EQ_INT(peft_trainer_train_sample_s8(&reference.t, x + n * i,
									      labels[i], &loss_ref),
						  PEFT_OK);
				PEFT_CHECK(isfinite(loss) && memcmp(&loss, &loss_ref, sizeof(loss)) == 0);
			}
			PEFT_CHECK_EQ_INT(peft_trainer_step(&round_trip.t), PEFT_OK);
			PEFT_CHECK_EQ_INT(peft_trainer_step(&reference.t), PEFT_OK);
		}
		check_high_water(&round_trip);
		check_high_water(&reference);
		check_finite_params(&round_trip);
		const peft_state_meta meta = {epoch, epoch};
		size_t written;
		peft_state_meta back;

		PEFT_CHECK_EQ_INT(peft_trainer_export_state(&round_trip.t, state, state_size, &written,
							    &meta),
				  PEFT_OK);
		PEFT_CHECK_EQ_INT(peft_trainer_export_state(&reference.t, state_ref, state_size,
							    &written, &meta),
				  PEFT_OK);
		PEFT_CHECK(memcmp(state, state_ref, state_size) == 0);
		/* A fresh trainer (new canary, re-initialised parameters) takes the state. */
		PEFT_CHECK_EQ_INT(peft_trainer_init(&round_trip.t, &plan, PEFT_MODE_TRAIN,
						    round_trip.arena, round_trip.need + SPARE),
				  PEFT_OK);
		PEFT_CHECK_EQ_INT(peft_trainer_import_state(&round_trip.t, state, state_size, &back),
				  PEFT_OK);
		PEFT_CHECK(back.epoch == epoch && round_trip.t.step == reference.t.step);
	}
	free(state_ref);
	free(state);
	free(reference.arena);
	free(round_trip.arena);
	free(x);
	free(blob);
	free(model);
	return taken;
}

int main(void)
{
	const size_t plans = PEFT_PLAN_FIXTURE_COUNT + PEFT_SOAK_PLAN_COUNT;
	const long per_plan = (TOTAL_STEPS + (long)plans - 1) / (long)plans;
	long total = 0;

	for (size_t i = 0; i < plans; i++) {
		const peft_plan_fixture *f = i < PEFT_PLAN_FIXTURE_COUNT
						     ? &peft_plan_fixtures[i]
						     : &peft_soak_plans[i - PEFT_PLAN_FIXTURE_COUNT];
		const long taken = soak_plan(f, per_plan);

		printf("%-14s %6ld steps\n", f->name, taken);
		total += taken;
	}
	PEFT_CHECK(total >= TOTAL_STEPS);
	printf("test_soak: ok, %ld steps over %zu plans\n", total, plans);
	return 0;
}
