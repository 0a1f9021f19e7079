/* Built against peft_static_reduced: the runtime without
 * lib/peft/methods/peft_method_lora.c, CONFIG_PEFT_METHOD_LORA and
 * CONFIG_PEFT_INT8_BACKWARD (as Kconfig leaves them out). A plan that needs
 * LoRA is refused with PEFT_ERR_PLAN_METHOD_NOT_COMPILED, one that asks for the
 * int8 backward path with PEFT_ERR_PLAN_INT8_NOT_COMPILED; the others load and
 * train. */
#include <string.h>

#include "peft/peft_plan.h"
#include "peft/peft_trainer.h"
#include "peft_plan_fixtures.h"
#include "peft_test.h"

static uint8_t blob[8192] __attribute__((aligned(16)));
static uint8_t model[8192] __attribute__((aligned(16)));
static uint8_t arena[65536] __attribute__((aligned(16)));

int main(void)
{
	int refused = 0, refused_int8 = 0, loaded = 0;

	for (size_t i = 0; i < PEFT_PLAN_FIXTURE_COUNT; i++) {
		const peft_plan_fixture *f = &peft_plan_fixtures[i];
		peft_plan plan;
		peft_trainer t;
		float loss;
		int8_t input[512];

		memcpy(blob, f->plan, f->plan_len);
		memcpy(model, f->model, f->model_len);
		const peft_status st =
			peft_plan_load(&plan, blob, f->plan_len, model, f->model_len);

		if (f->uses_lora) {
			PEFT_CHECK_EQ_INT(st, PEFT_ERR_PLAN_METHOD_NOT_COMPILED);
			refused++;
			continue;
		}
		if (f->uses_int8_backward) {
			PEFT_CHECK_EQ_INT(st, PEFT_ERR_PLAN_INT8_NOT_COMPILED);
			refused_int8++;
			continue;
		}
		PEFT_CHECK_EQ_INT(st, PEFT_OK);
		PEFT_CHECK_EQ_INT(
			peft_trainer_init(&t, &plan, PEFT_MODE_TRAIN, arena, sizeof(arena)),
			PEFT_OK);
		memset(input, 3, sizeof(input));
		PEFT_CHECK_EQ_INT(peft_trainer_train_sample_s8(&t, input, 1, &loss), PEFT_OK);
		PEFT_CHECK_EQ_INT(peft_trainer_step(&t), PEFT_OK);
		loaded++;
	}
	PEFT_CHECK(refused > 0 && refused_int8 > 0 && loaded > 0);
	printf("test_plan_reduced_build: %d refused (LoRA), %d refused (int8 path), %d loaded\n",
	       refused, refused_int8, loaded);
	return 0;
}
