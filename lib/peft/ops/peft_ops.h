/* The operator table (private to lib/peft).
 *
 * Everything the runtime knows about one TFLite op sits in its entry, next to
 * its kernels, at the end of kernels/<op>/peft_<op>.c or, for an op with
 * optimized kernels, in kernels/<op>/peft_<op>_op.c (as TFLM's kernels register
 * themselves): its arity, whether it carries weights, the shape rule the
 * plan loader checks, and the forward and backward calls into the kernels
 * (include/peft/peft_kernels.h). The plan loader and the trainer look ops up
 * here instead of switching on the op code, so an op is added in one place
 * (DEVELOPERS.md, "Adding an op"). */
#ifndef PEFT_OPS_H
#define PEFT_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "../plan/peft_plan_internal.h"
#include "peft/peft_kernels.h"
#include "peft/peft_status.h"

/* A layer record and its tensors' shapes, before peft_layer_info exists. */
typedef struct {
	const peft_layer_rec *rec;
	peft_dims in[2]; /* in[1]: second input of a two-input op */
	peft_dims out;
	int64_t in_size;
	int64_t out_size;
} peft_op_shapes;

/* The linear part of one layer's forward: out = op(x, weights) + bias. */
typedef struct {
	const peft_layer_info *layer;
	const float *x[2];             /* inputs (x[1] for two-input ops) */
	const float *weight;           /* trained float32 weights, or NULL: */
	const peft_weights_s8 *frozen; /* the int8 weights read in place from the model */
	const float *bias;             /* NULL: no bias */
	float *out;
} peft_op_forward_args;

/* One layer's backward through its op, from the gradient g wrt the linear
 * output. NULL outputs are not computed. */
typedef struct {
	const peft_layer_info *layer;
	const float *g;
	const float *x; /* the kept input (when weights train) */
	const float *weight;
	const peft_weights_s8 *frozen;
	float *grad_weight;
	float *grad_bias;
	float *grad_in[2];
	bool accumulate[2]; /* add to grad_in[j] instead of overwriting it */
} peft_op_backward_args;

typedef struct {
	uint8_t num_inputs;
	bool linear;            /* weights and bias from the model; methods may attach */
	bool window;            /* kernel, stride and padding fields describe a sliding window */
	bool channel_innermost; /* weights [kh][kw][c] (depthwise), else output channel first */
	/* Every output row comes from the same input row, so samples stacked along the
	 * height run in one call (a window op does so with a 1x1 stride-1 unpadded window:
	 * peft_op_stacks_samples()). */
	bool stacks_samples;
	/* The shape rule beyond the common checks (true: consistent). */
	bool (*shapes_ok)(const peft_op_shapes *s);
	peft_status (*forward)(const peft_op_forward_args *a);
	peft_status (*backward)(const peft_op_backward_args *a);
} peft_op;

/* Entries, one per op (kernels/<op>/: see above; the list of peft_formats.h). */
#define PEFT_OP_DECLARE(NAME, name) extern const peft_op peft_op_##name;
PEFT_OP_LIST(PEFT_OP_DECLARE)
#undef PEFT_OP_DECLARE

/* The entry of an op code, or NULL for a code outside 1 .. PEFT_OP_COUNT. */
const peft_op *peft_op_find(uint32_t code);

/* Whether layer L's op runs samples stacked along the height in one call. */
bool peft_op_stacks_samples(const peft_layer_info *L);

/* Kernel parameters from a decoded layer. */
peft_conv_params peft_op_conv_params(const peft_layer_info *L);
peft_fc_params peft_op_fc_params(const peft_layer_info *L);

/* count == a * b * c * d, with no product overflowing (for shape rules). */
bool peft_op_product_is(uint32_t count, int32_t a, int32_t b, int32_t c, int32_t d);

#endif /* PEFT_OPS_H */
