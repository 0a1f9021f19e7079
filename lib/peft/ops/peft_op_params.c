/* Kernel parameters from a decoded layer, for the op entries: apart from the
 * table (peft_ops.c) because an entry in a kernel file (kernels/<op>/peft_<op>.c)
 * also goes into the kernels-only libraries, which have no table. */
#include <stddef.h>

#include "peft_ops.h"

peft_conv_params peft_op_conv_params(const peft_layer_info *L)
{
	const peft_layer_rec *r = &L->rec;

	return (peft_conv_params){L->in[0],    L->out,      r->kernel_h, r->kernel_w,
				  r->stride_h, r->stride_w, r->pad_top,  r->pad_left};
}

peft_fc_params peft_op_fc_params(const peft_layer_info *L)
{
	return (peft_fc_params){L->rows, L->in_features, L->out_features};
}

/* count == a * b * c * d, multiplied in 64 bits and stopped once it exceeds
 * count (so no product overflows). */
bool peft_op_product_is(uint32_t count, int32_t a, int32_t b, int32_t c, int32_t d)
{
	const int32_t factors[4] = {a, b, c, d};
	int64_t p = 1;

	for (int i = 0; i < 4; i++) {
		p *= factors[i];
		if (p > (int64_t)count) {
			return false;
		}
	}
	return p == (int64_t)count;
}
