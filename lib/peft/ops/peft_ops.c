/* The operator table: one entry per op code of peft_formats.h, defined by the
 * op beside its kernels in kernels/<op>/ (see peft_ops.h). */
#include <stddef.h>

#include "peft_ops.h"

#define PEFT_OP_ENTRY(NAME, name) [PEFT_OP_##NAME] = &peft_op_##name,
static const peft_op *const ops[PEFT_OP_COUNT + 1] = {PEFT_OP_LIST(PEFT_OP_ENTRY)};
#undef PEFT_OP_ENTRY

const peft_op *peft_op_find(uint32_t code)
{
	return code >= 1u && code <= (uint32_t)PEFT_OP_COUNT ? ops[code] : NULL;
}
