/* The layout table behind peft_abi_query(): every struct a binding mirrors. */
#include "peft/peft_abi.h"

#include <stddef.h>
#include <string.h>

#include "peft/peft_plan.h"
#include "peft/peft_state.h"
#include "peft/peft_trainer.h"

typedef struct {
	const char *name;
	size_t value;
} abi_entry;

#define SIZE_OF(type)          {#type, sizeof(type)}
#define OFFSET_OF(type, field) {#type "." #field, offsetof(type, field)}

static const abi_entry entries[] = {
	SIZE_OF(peft_plan),
	SIZE_OF(peft_trainer),
	OFFSET_OF(peft_trainer, plan),
	OFFSET_OF(peft_trainer, mode),
	OFFSET_OF(peft_trainer, arena),
	OFFSET_OF(peft_trainer, arena_size),
	OFFSET_OF(peft_trainer, step),
	OFFSET_OF(peft_trainer, samples),
	OFFSET_OF(peft_trainer, pending_label),
	OFFSET_OF(peft_trainer, pending_labels),
	OFFSET_OF(peft_trainer, pending_samples),
	OFFSET_OF(peft_trainer, max_loss),
	OFFSET_OF(peft_trainer, max_param),
	SIZE_OF(peft_param_info),
	OFFSET_OF(peft_param_info, layer),
	OFFSET_OF(peft_param_info, graph_layer),
	OFFSET_OF(peft_param_info, kind),
	OFFSET_OF(peft_param_info, data),
	OFFSET_OF(peft_param_info, grad),
	OFFSET_OF(peft_param_info, count),
	SIZE_OF(peft_dims),
	OFFSET_OF(peft_dims, h),
	OFFSET_OF(peft_dims, w),
	OFFSET_OF(peft_dims, c),
	SIZE_OF(peft_arena_breakdown),
	OFFSET_OF(peft_arena_breakdown, cached_activations),
	OFFSET_OF(peft_arena_breakdown, gradients),
	OFFSET_OF(peft_arena_breakdown, parameters),
	OFFSET_OF(peft_arena_breakdown, optimizer_state),
	OFFSET_OF(peft_arena_breakdown, scratch),
	OFFSET_OF(peft_arena_breakdown, total),
	SIZE_OF(peft_state_meta),
	OFFSET_OF(peft_state_meta, epoch),
	OFFSET_OF(peft_state_meta, sequence),
};

peft_status peft_abi_query(const char *name, size_t *value)
{
	if (name == NULL || value == NULL) {
		return PEFT_ERR_ARG;
	}
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		if (strcmp(entries[i].name, name) == 0) {
			*value = entries[i].value;
			return PEFT_OK;
		}
	}
	return PEFT_ERR_ARG;
}
