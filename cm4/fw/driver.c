/*
 * Trainer driver: loads the plan embedded in flash (cm4/fw/blobs.S, generated
 * per plan by scripts/micropeft/eval/cm4.py), trains one step on the embedded int8
 * samples (inputs of the trainable part: the frozen prefix runs once per
 * sample and is cached, so it is not part of a training step), runs one
 * inference, and marks every phase for the instruction-count plugin. A plan
 * with a batch capacity takes its samples in one call (one forward and one
 * backward mark for all of them); otherwise one sample at a time. Results
 * are printed as "key: value" lines over semihosting.
 */
#include <stdint.h>
#include <stdio.h>

#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft_cm4.h"

#ifndef PEFT_CM4_SAMPLES
#define PEFT_CM4_SAMPLES 1
#endif
#ifndef PEFT_CM4_SAMPLE_BYTES
#define PEFT_CM4_SAMPLE_BYTES 1
#endif
#define PEFT_CM4_STACK_PAINT 0xCDu

extern const uint8_t peft_cm4_model[], peft_cm4_model_end[];
extern const uint8_t peft_cm4_plan[], peft_cm4_plan_end[];
extern const int8_t peft_cm4_samples[], peft_cm4_samples_end[];
extern const int32_t peft_cm4_labels[];
extern uint8_t peft_cm4_arena[], peft_cm4_arena_end[];
extern uint8_t __StackLimit[];

int main(void);

static peft_plan plan;
static peft_trainer trainer;
static int32_t losses_micro[PEFT_CM4_SAMPLES];

static int fail(const char *what, peft_status status)
{
	peft_cm4_print_marks();
	printf("error: %s: %s\n", what, peft_status_str(status));
	printf("status: %d\n", (int)status);
	return 1;
}

/* Fill the unused stack with a pattern; stack_used() finds the deepest write. */
__attribute__((noinline)) static void paint_stack(void)
{
	uint8_t *p = __StackLimit;
	uint8_t *sp = (uint8_t *)__builtin_frame_address(0) - 64;

	while (p < sp) {
		*p++ = PEFT_CM4_STACK_PAINT;
	}
}

static uint32_t stack_used(void)
{
	const uint8_t *p = __StackLimit;
	extern uint8_t __StackTop[];

	while (p < __StackTop && *p == PEFT_CM4_STACK_PAINT) {
		p++;
	}
	return (uint32_t)(__StackTop - p);
}

int main(void)
{
	peft_status st;
	size_t need = 0;
	size_t high_water = 0;
	float loss = 0.0f;
	int32_t predicted = -1;
	const size_t arena_len = (size_t)(peft_cm4_arena_end - peft_cm4_arena);

	paint_stack();
	st = peft_plan_load(&plan, peft_cm4_plan, (size_t)(peft_cm4_plan_end - peft_cm4_plan),
			    peft_cm4_model, (size_t)(peft_cm4_model_end - peft_cm4_model));
	if (st != PEFT_OK) {
		return fail("peft_plan_load", st);
	}
	st = peft_plan_arena_size(&plan, PEFT_MODE_TRAIN, &need);
	if (st != PEFT_OK) {
		return fail("peft_plan_arena_size", st);
	}
	if (need > arena_len) {
		return fail("arena", PEFT_ERR_BUFFER_TOO_SMALL);
	}
	st = peft_trainer_init(&trainer, &plan, PEFT_MODE_TRAIN, peft_cm4_arena, arena_len);
	if (st != PEFT_OK) {
		return fail("peft_trainer_init", st);
	}

	int32_t capacity = 1;

	st = peft_plan_batch_capacity(&plan, &capacity);
	if (st != PEFT_OK) {
		return fail("peft_plan_batch_capacity", st);
	}
	if (capacity > 1) {
		static float losses[PEFT_CM4_SAMPLES];

		peft_cm4_mark(PEFT_CM4_FORWARD);
		st = peft_trainer_forward_batch_s8(&trainer, peft_cm4_samples, peft_cm4_labels,
						   PEFT_CM4_SAMPLES, losses);
		peft_cm4_mark(PEFT_CM4_BACKWARD);
		if (st != PEFT_OK) {
			return fail("peft_trainer_forward_batch_s8", st);
		}
		st = peft_trainer_backward(&trainer);
		if (st != PEFT_OK) {
			return fail("peft_trainer_backward", st);
		}
		for (int32_t i = 0; i < PEFT_CM4_SAMPLES; i++) {
			losses_micro[i] = (int32_t)(losses[i] * 1e6f);
		}
	}
	for (int32_t i = 0; capacity == 1 && i < PEFT_CM4_SAMPLES; i++) {
		const int8_t *x = peft_cm4_samples + (size_t)i * PEFT_CM4_SAMPLE_BYTES;

		peft_cm4_mark(PEFT_CM4_FORWARD);
		st = peft_trainer_forward_s8(&trainer, x, peft_cm4_labels[i], &loss);
		peft_cm4_mark(PEFT_CM4_BACKWARD);
		if (st != PEFT_OK) {
			return fail("peft_trainer_forward_s8", st);
		}
		/* Backward runs to the next mark (the next forward or the optimizer),
		 * so that the phases of a step add up to the step exactly. */
		st = peft_trainer_backward(&trainer);
		if (st != PEFT_OK) {
			return fail("peft_trainer_backward", st);
		}
		losses_micro[i] = (int32_t)(loss * 1e6f);
	}
	peft_cm4_mark(PEFT_CM4_OPTIMIZER);
	st = peft_trainer_step(&trainer);
	peft_cm4_mark(PEFT_CM4_STEP_END);
	if (st != PEFT_OK) {
		return fail("peft_trainer_step", st);
	}

	peft_cm4_mark(PEFT_CM4_INFER);
	st = peft_trainer_predict_s8(&trainer, peft_cm4_samples, NULL, &predicted);
	peft_cm4_mark(PEFT_CM4_INFER_END);
	if (st != PEFT_OK) {
		return fail("peft_trainer_predict_s8", st);
	}
	st = peft_trainer_arena_high_water(&trainer, &high_water);
	if (st != PEFT_OK) {
		return fail("peft_trainer_arena_high_water", st);
	}

	peft_cm4_print_marks();
	printf("arena_size: %lu\n", (unsigned long)need);
	printf("arena_high_water: %lu\n", (unsigned long)high_water);
	printf("stack_used: %lu\n", (unsigned long)stack_used());
	printf("predicted: %ld\n", (long)predicted);
	printf("losses_micro:");
	for (int32_t i = 0; i < PEFT_CM4_SAMPLES; i++) {
		printf(" %ld", (long)losses_micro[i]);
	}
	printf("\n");
	printf("status: 0\n");
	return 0;
}
