/* Soak: long training of random plans (the planner's random graphs of every
 * operator and method, both optimizers and caches, plus the hand-made
 * fixtures), at least 100,000 optimizer steps in all, meant for the ASan +
 * UBSan build. It checks after every epoch:
 *   - the arena high-water mark never passes the planned size (the arena is
 *     given spare canary bytes beyond it, so a write past the plan shows);
 *   - no loss and no parameter is NaN or infinite;
 *   - the state survives export -> fresh trainer -> import: the fresh trainer
 *     and the one it came from train the next steps bit-identically, and the
 *     fresh one carries on (so every epoch's state went through a round trip).
 * Samples are random int8 with fixed random labels; batches of 1 and 3. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft_plan_fixtures.h"
#include "peft_test.h"

#define TOTAL_STEPS 100000
#define SPARE       1024u
#define EPOCH_STEPS 120
#define PROBE_STEPS 5
#define SAMPLES     16

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
	PEFT_CHECK_EQ_INT(
		peft_trainer_init(&s->t, plan, PEFT_MODE_TRAIN, s->arena, s->need + SPARE),
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

/* One optimizer step of a batch (mostly single samples; every eighth step
 * accumulates three) drawn from `picks`. */
static void train_step(soak_trainer *s, const int8_t *x, size_t n, const int32_t *labels,
		       const uint32_t *picks, int step)
{
	const int batch = step % 8 == 7 ? 3 : 1;

	for (int b = 0; b < batch; b++) {
		const uint32_t i = picks[b];
		float loss;

		PEFT_CHECK_EQ_INT(peft_trainer_train_sample_s8(&s->t, x + n * i, labels[i], &loss),
				  PEFT_OK);
		PEFT_CHECK(isfinite(loss));
	}
	PEFT_CHECK_EQ_INT(peft_trainer_step(&s->t), PEFT_OK);
}

static void draw(uint32_t picks[3])
{
	for (int b = 0; b < 3; b++) {
		picks[b] = xorshift() % SAMPLES;
	}
}

static void export_state(const soak_trainer *s, uint8_t *buf, size_t size, uint32_t epoch)
{
	const peft_state_meta meta = {epoch, epoch};
	size_t written;

	PEFT_CHECK_EQ_INT(peft_trainer_export_state(&s->t, buf, size, &written, &meta), PEFT_OK);
	PEFT_CHECK_EQ_INT(written, size);
}

/* Trains one plan for at least `steps` steps; returns the number taken. Each
 * epoch ends with the state exported and imported into a fresh trainer; both
 * then train the same PROBE_STEPS steps and must export identical bytes, and
 * the fresh one carries on. */
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
	soak_trainer pair[2];
	soak_trainer *current = &pair[0], *fresh = &pair[1];

	start(current, &plan);
	start(fresh, &plan);
	size_t state_size;

	PEFT_CHECK_EQ_INT(peft_trainer_state_size(&current->t, &state_size), PEFT_OK);
	uint8_t *state = malloc(state_size);
	uint8_t *probe = malloc(state_size);
	uint8_t *probe_fresh = malloc(state_size);
	uint32_t picks[PROBE_STEPS][3];
	long taken = 0;

	PEFT_CHECK(state != NULL && probe != NULL && probe_fresh != NULL);
	for (uint32_t epoch = 1; taken < steps; epoch++) {
		for (int s = 0; s < EPOCH_STEPS; s++, taken++) {
			draw(picks[0]);
			train_step(current, x, n, labels, picks[0], s);
		}
		check_high_water(current);
		check_finite_params(current);
		export_state(current, state, state_size, epoch);
		/* A fresh trainer (new canary, re-initialised parameters) takes the state. */
		peft_state_meta back;

		PEFT_CHECK_EQ_INT(peft_trainer_init(&fresh->t, &plan, PEFT_MODE_TRAIN, fresh->arena,
						    fresh->need + SPARE),
				  PEFT_OK);
		PEFT_CHECK_EQ_INT(peft_trainer_import_state(&fresh->t, state, state_size, &back),
				  PEFT_OK);
		PEFT_CHECK(back.epoch == epoch && fresh->t.step == current->t.step);
		for (int s = 0; s < PROBE_STEPS; s++, taken++) {
			draw(picks[s]);
			train_step(current, x, n, labels, picks[s], s);
			train_step(fresh, x, n, labels, picks[s], s);
		}
		export_state(current, probe, state_size, epoch);
		export_state(fresh, probe_fresh, state_size, epoch);
		PEFT_CHECK(memcmp(probe, probe_fresh, state_size) == 0);
		check_high_water(fresh);
		soak_trainer *const swap = current;

		current = fresh;
		fresh = swap;
	}
	free(probe_fresh);
	free(probe);
	free(state);
	free(pair[1].arena);
	free(pair[0].arena);
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
		const peft_plan_fixture *f =
			i < PEFT_PLAN_FIXTURE_COUNT ? &peft_plan_fixtures[i]
						    : &peft_soak_plans[i - PEFT_PLAN_FIXTURE_COUNT];
		const long taken = soak_plan(f, per_plan);

		printf("%-14s %6ld steps\n", f->name, taken);
		total += taken;
	}
	PEFT_CHECK(total >= TOTAL_STEPS);
	printf("test_soak: ok, %ld steps over %zu plans\n", total, plans);
	return 0;
}
