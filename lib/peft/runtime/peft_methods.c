/* The methods compiled into this build. Kconfig defines CONFIG_PEFT_METHOD_*
 * for the methods whose files sources.cmake compiles (the host build defines
 * all), so the table and the linked descriptors always agree. */
#include <stddef.h>

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
#ifdef CONFIG_PEFT_METHOD_DORA
	&peft_method_dora,
#endif
#ifdef CONFIG_PEFT_METHOD_IA3
	&peft_method_ia3,
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
