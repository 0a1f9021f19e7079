/* Method descriptors (private to lib/peft).
 *
 * A fine-tuning method is data over the shared kernels: which arrays of a
 * layer it trains, plus optional hooks where it adds computation (LoRA's
 * adapter on the linear output, the per-channel affine of scale+shift, the
 * input scaling of IA3 on a feedforward module). Each
 * method lives in methods/peft_method_<name>.c and defines one descriptor;
 * Kconfig (CONFIG_PEFT_METHOD_<NAME>) decides which files are compiled and
 * runtime/peft_methods.c lists the compiled ones, so a plan that needs a
 * missing method is refused at load (PEFT_ERR_PLAN_METHOD_NOT_COMPILED). */
#ifndef PEFT_METHOD_H
#define PEFT_METHOD_H

#include <stdbool.h>
#include <stdint.h>

#include "../plan/peft_plan_internal.h"
#include "peft/peft_status.h"

/* Buffers of one layer while it runs (NULL where absent). */
typedef struct {
	const peft_layer_info *info;
	uint32_t seed; /* plan seed (LoRA initialisation) */
	float *param[PEFT_PARAM_KIND_COUNT];
	float *grad[PEFT_PARAM_KIND_COUNT]; /* NULL in inference */
	peft_weights_s8 w8;                 /* the frozen int8 weights (zero without weights) */
	const float *bias;                  /* forward: the bias lin includes (NULL: none) */
	const float *x;                     /* the layer's input values (NULL: x_kept) */
	float *lin;                         /* linear output (+ bias), rows x out_features */
	float *out;                         /* output before the fused activation */
	float *g;                           /* backward: gradient at the current point */
	float *g_out;            /* backward: gradient wrt out (after the activation's) */
	float *grad_in;          /* input gradient, NULL if not computed */
	bool grad_in_accumulate; /* backward: add to grad_in (another reader wrote it first) */
	float *x_scaled;         /* forward: IA3_INPUT's l x, in_size[0] floats */
	float *gx;               /* backward: gradient wrt the linear kernel's input (l x) */
	float *u;                /* LoRA: (alpha / r) * A x, rows x r */
	float *tmp_a;            /* scratch, out_size floats */
	float *tmp_b;            /* scratch, rows * r floats */
	float *dora_norm;        /* DoRA: ||W0 + s B A|| per output channel (params_changed) */
	/* Backward with x NULL: the int8-kept input (rows x in), its quantization, and a
	 * stage of PEFT_BWD_IN_ROWS rows for its dequantised values. */
	const int8_t *x_kept;
	float x_scale;
	int32_t x_zero_point;
	float *x_stage;
} peft_layer_ctx;

typedef peft_status (*peft_method_hook)(peft_layer_ctx *ctx);

/* A method's `trains` holds one bit per parameter kind. */
_Static_assert(PEFT_PARAM_KIND_COUNT <= 16, "peft_method.trains has 16 bits");

typedef struct {
	uint16_t flag; /* graph.Method bit */
	const char *name;
	uint16_t trains;       /* bit (1 << peft_param_kind) for each array the method trains */
	peft_method_hook init; /* initialise the method's own arrays */
	/* Map ctx->x into ctx->x_scaled and point ctx->x there: the linear kernel's input.
	 * Backward then gives the method the gradient wrt that input in ctx->gx (the op's
	 * input gradient) and ctx->x the layer's own input (kept); bwd_input computes the
	 * parameter gradients and grad_in (when not NULL) from it. */
	peft_method_hook fwd_input;
	peft_method_hook fwd_affine;  /* ctx->out from ctx->lin; NULL: out is lin */
	peft_method_hook fwd_adapter; /* add a side branch of ctx->x to ctx->out */
	peft_method_hook bwd_affine;  /* param grads; set ctx->g to the gradient wrt lin */
	peft_method_hook bwd_adapter; /* param grads from ctx->g_out; add to ctx->grad_in */
	peft_method_hook bwd_input;   /* param grads from ctx->gx and ctx->x; grad_in */
	/* The parameters changed (init, an optimizer update, a state import): recompute
	 * what the method derives from them alone, which forward and backward then read
	 * instead of recomputing it per sample (DoRA's norms). */
	peft_method_hook params_changed;
} peft_method;

/* Descriptors, one per methods/peft_method_<name>.c (the list of peft_formats.h). */
#define PEFT_METHOD_DESCRIPTOR(NAME, name) extern const peft_method peft_method_##name;
PEFT_METHOD_LIST(PEFT_METHOD_DESCRIPTOR)
#undef PEFT_METHOD_DESCRIPTOR

/* The compiled-in descriptor for one flag bit, or NULL. */
const peft_method *peft_method_find(uint16_t flag);

/* The highest method bit: the loops below visit bits 1 .. PEFT_METHOD_LAST_BIT,
 * every one of the PEFT_METHOD_COUNT methods. */
#define PEFT_METHOD_LAST_BIT (1u << (PEFT_METHOD_COUNT - 1))

/* Which hook peft_methods_run() calls. */
typedef enum {
	PEFT_HOOK_INIT,
	PEFT_HOOK_FWD_INPUT,
	PEFT_HOOK_FWD_AFFINE,
	PEFT_HOOK_FWD_ADAPTER,
	PEFT_HOOK_BWD_AFFINE,
	PEFT_HOOK_BWD_ADAPTER,
	PEFT_HOOK_BWD_INPUT,
	PEFT_HOOK_PARAMS_CHANGED,
} peft_method_hook_id;

/* What the methods of a layer's flags train together (bit 1 << peft_param_kind);
 * PEFT_ERR_PLAN_METHOD_NOT_COMPILED when one of them is left out of the build.
 * Every bit below PEFT_METHOD_COUNT is visited. Inline, so that each call site
 * compiles to the loop it replaces. */
static inline peft_status peft_methods_trains(uint16_t methods, uint32_t *trains)
{
	uint32_t acc = 0;

	for (uint16_t bit = 1; bit <= PEFT_METHOD_LAST_BIT; bit = (uint16_t)(bit << 1)) {
		if (methods & bit) {
			const peft_method *m = peft_method_find(bit);

			if (m == NULL) {
				return PEFT_ERR_PLAN_METHOD_NOT_COMPILED;
			}
			acc |= m->trains;
		}
	}
	*trains = acc;
	return PEFT_OK;
}

static inline peft_method_hook peft_method_hook_of(const peft_method *m, peft_method_hook_id hook)
{
	switch (hook) {
	case PEFT_HOOK_INIT:
		return m->init;
	case PEFT_HOOK_FWD_INPUT:
		return m->fwd_input;
	case PEFT_HOOK_FWD_AFFINE:
		return m->fwd_affine;
	case PEFT_HOOK_FWD_ADAPTER:
		return m->fwd_adapter;
	case PEFT_HOOK_BWD_AFFINE:
		return m->bwd_affine;
	case PEFT_HOOK_BWD_ADAPTER:
		return m->bwd_adapter;
	case PEFT_HOOK_BWD_INPUT:
		return m->bwd_input;
	case PEFT_HOOK_PARAMS_CHANGED:
		return m->params_changed;
	}
	return NULL;
}

/* Run one hook of each method in `methods`, in bit order (methods without that
 * hook are skipped); stops at the first status other than PEFT_OK. */
static inline peft_status peft_methods_run(uint16_t methods, peft_method_hook_id hook,
					   peft_layer_ctx *ctx)
{
	for (uint16_t bit = 1; bit <= PEFT_METHOD_LAST_BIT; bit = (uint16_t)(bit << 1)) {
		const peft_method *m = (methods & bit) ? peft_method_find(bit) : NULL;

		if (m != NULL && peft_method_hook_of(m, hook) != NULL) {
			const peft_status st = peft_method_hook_of(m, hook)(ctx);

			if (st != PEFT_OK) {
				return st;
			}
		}
	}
	return PEFT_OK;
}

#endif /* PEFT_METHOD_H */
