/* The methods compiled into this build. Kconfig defines CONFIG_PEFT_METHOD_*
 * for the methods whose files sources.cmake compiles (the host build defines
 * all), so the table and the linked descriptors always agree. */
#include <stddef.h>
#include <stdint.h>

#include "../methods/peft_method.h"

static const peft_method *const compiled_methods[] = {
#ifdef CONFIG_PEFT_METHOD_FULL
	&peft_method_full,
#endif
#ifdef CONFIG_PEFT_METHOD_LAST_LAYER
	&peft_method_last_layer,
#endif
#ifdef CONFIG_PEFT_METHOD_BITFIT
	&peft_method_bitfit,
#endif
#ifdef CONFIG_PEFT_METHOD_SCALE_SHIFT
	&peft_method_scale_shift,
#endif
#ifdef CONFIG_PEFT_METHOD_LORA
	&peft_method_lora,
#endif
#ifdef CONFIG_PEFT_METHOD_SPARSE
	&peft_method_sparse,
#endif
	NULL, /* keeps the array non-empty when no method is enabled */
};

const peft_method *peft_method_find(uint16_t flag)
{
	for (size_t i = 0; compiled_methods[i] != NULL; i++) {
		if (compiled_methods[i]->flag == flag) {
			return compiled_methods[i];
		}
	}
	return NULL;
}

peft_status peft_methods_trains(uint16_t methods, uint32_t *trains)
{
	*trains = 0;
	for (uint32_t i = 0; i < PEFT_METHOD_COUNT; i++) {
		const uint16_t bit = (uint16_t)(1u << i);

		if (methods & bit) {
			const peft_method *m = peft_method_find(bit);

			if (m == NULL) {
				return PEFT_ERR_PLAN_METHOD_NOT_COMPILED;
			}
			*trains |= m->trains;
		}
	}
	return PEFT_OK;
}

static peft_method_hook hook_of(const peft_method *m, peft_method_hook_id hook)
{
	switch (hook) {
	case PEFT_HOOK_INIT:
		return m->init;
	case PEFT_HOOK_FWD_AFFINE:
		return m->fwd_affine;
	case PEFT_HOOK_FWD_ADAPTER:
		return m->fwd_adapter;
	case PEFT_HOOK_BWD_AFFINE:
		return m->bwd_affine;
	case PEFT_HOOK_BWD_ADAPTER:
		return m->bwd_adapter;
	}
	return NULL;
}

peft_status peft_methods_run(uint16_t methods, peft_method_hook_id hook, peft_layer_ctx *ctx)
{
	for (uint32_t i = 0; i < PEFT_METHOD_COUNT; i++) {
		const uint16_t bit = (uint16_t)(1u << i);
		const peft_method *m = (methods & bit) ? peft_method_find(bit) : NULL;
		const peft_method_hook fn = m != NULL ? hook_of(m, hook) : NULL;

		if (fn != NULL) {
			const peft_status st = fn(ctx);

			if (st != PEFT_OK) {
				return st;
			}
		}
	}
	return PEFT_OK;
}
