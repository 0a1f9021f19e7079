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

bool peft_op_stacks_samples(const peft_layer_info *L)
{
	const peft_layer_rec *r = &L->rec;
	const peft_op *op = peft_op_find(r->op);

	return op != NULL &&
	       (op->stacks_samples ||
		(op->window && r->kernel_h == 1 && r->kernel_w == 1 && r->stride_h == 1 &&
		 r->stride_w == 1 && r->pad_top == 0 && r->pad_left == 0));
}
