/* The methods compiled into this build: peft_formats.h's list of those whose
 * CONFIG_PEFT_METHOD_* is set. Kconfig sets it for the methods whose files
 * sources.cmake compiles (the host build sets all), so the table and the
 * linked descriptors always agree. */
#include <stddef.h>

#include "../methods/peft_method.h"

#define PEFT_METHOD_ENTRY(NAME, name) &peft_method_##name,
static const peft_method *const compiled_methods[] = {
	PEFT_COMPILED_METHOD_LIST(PEFT_METHOD_ENTRY) NULL, /* non-empty when no method is enabled */
};
#undef PEFT_METHOD_ENTRY

const peft_method *peft_method_find(uint16_t flag)
{
	for (size_t i = 0; compiled_methods[i] != NULL; i++) {
		if (compiled_methods[i]->flag == flag) {
			return compiled_methods[i];
		}
	}
	return NULL;
}
