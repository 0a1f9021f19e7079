/* Plan records as the runtime decodes them (private to lib/peft).
 * The byte layout is in docs/formats.md ("Plan blob"); records are copied out
 * of the blob at the offsets of peft/peft_formats.h (peft/peft_bytes.h), so
 * the blob needs no particular alignment beyond the 4 bytes peft_plan_load()
 * asks for. */
#ifndef PEFT_PLAN_INTERNAL_H
#define PEFT_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_formats.h"
#include "peft/peft_kernels.h"
#include "peft/peft_plan.h"

/* The record layouts (PEFT_PLAN_HDR_*, PEFT_PLAN_TENSOR_*, PEFT_PLAN_LAYER_*,
 * PEFT_PLAN_BUFFER_*), op, method and buffer-kind codes and limits: peft/peft_formats.h. */

/* The last buffer kind this runtime knows (peft_buffer_kind starts at 1). */
#define PEFT_BUF_KIND_LAST PEFT_BUF_DORA_NORM

/* One work-region buffer record. */
typedef struct {
	uint8_t kind;
	uint8_t arena;
	uint8_t part; /* parameter kind of a PARAM_GRAD, else 0 */
	uint8_t reserved;
	uint16_t owner;
	uint16_t first; /* live range: forward of layer k = k, loss = L, backward = 2L - k */
	uint16_t last;
	uint16_t reserved2;
	uint32_t size;
	uint32_t offset;
} peft_buffer_rec;

/* A constant array in the model (weights int8 or bias int32, float scales). */
typedef struct {
	uint32_t offset;
	uint32_t count;
	uint32_t scale_offset;
	uint32_t scale_count;
} peft_ref_rec;

typedef struct {
	int32_t h, w, c;
	float scale;
	int32_t zero_point;
	uint8_t cache_dtype; /* peft_cache_dtype when kept for backward, else 0 */
	uint8_t needs_grad;
	uint16_t reserved;
} peft_tensor_rec;

typedef struct {
	uint8_t op;
	uint8_t activation;
	uint16_t methods;
	uint16_t graph_layer;
	uint16_t num_inputs;
	uint16_t input[2];
	uint16_t output;
	uint16_t lora_rank;
	float lora_alpha;
	int32_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
	peft_ref_rec weights;
	peft_ref_rec bias;
	uint32_t reserved;
	uint32_t param[PEFT_PARAM_KIND_COUNT];
	uint32_t grad[PEFT_PARAM_KIND_COUNT];
	uint32_t opt_m[PEFT_PARAM_KIND_COUNT];
	uint32_t opt_v[PEFT_PARAM_KIND_COUNT];
} peft_layer_rec;

/* A layer record with everything derived from it and its tensors. */
typedef struct {
	peft_layer_rec rec;
	int32_t index;
	peft_dims in[2];
	peft_dims out;
	int32_t in_size[2];
	int32_t out_size;
	int32_t rows;                          /* FC / LoRA rows */
	int32_t in_features;                   /* FC input features, conv input channels */
	int32_t out_features;                  /* output channels */
	int32_t counts[PEFT_PARAM_KIND_COUNT]; /* floats per array (0: absent) */
	bool trainable[PEFT_PARAM_KIND_COUNT]; /* has a parameter buffer and a gradient */
	bool runs_backward;
	bool backward_input[2];
	bool needs_input_values; /* input kept for backward (weight / LoRA A / IA3 input l) */
	bool streams_input;      /* the input serves LoRA A's gradient only (no weight, no DoRA):
				  * int8-kept rows are dequantised PEFT_BWD_IN_ROWS at a time */
	bool keeps_mask;         /* fused ReLU/ReLU6 derivative kept as a 1-bit mask */
	bool scales_lin;         /* a trained per-channel scale of lin (scale+shift, IA3) */
	bool scales_input;       /* a trained per-channel scale of the input (IA3_INPUT): the linear
				  * kernel reads l x (FWD_XS), its input gradient goes to BWD_GX */
	bool int8_input_grad;    /* input gradient through the int8 path (plan flag) */
	bool rounds_weights;     /* quantized forward: trained weights used rounded to int8, as
				  * merge stores them (FWD_QW, BWD_QW; plan.rounds_trained_weights) */
	bool rounds_lora;        /* quantized forward: W0 + (alpha / r) B A used rounded to int8,
				  * one row at a time (FWD_QW, BWD_QW; plan.rounds_lora) */
} peft_layer_info;

/* The layer over n samples stacked along the height (a plan's batch capacity,
 * or the samples of one call): heights, sizes and rows n times a sample's.
 * Per-sample buffers hold their samples one after the other, so an op whose
 * every output row comes from the same input row (peft_op_stacks_samples())
 * runs them all in one call, and every elementwise or per-channel step too. */
static inline void peft_layer_info_stack(peft_layer_info *L, int32_t n)
{
	for (int k = 0; k < 2; k++) {
		L->in[k].h *= n;
		L->in_size[k] *= n;
	}
	L->out.h *= n;
	L->out_size *= n;
	L->rows *= n;
}

/* Read record i (no checks beyond what peft_plan_load() already did). */
void peft_plan_read_tensor(const peft_plan *plan, int32_t i, peft_tensor_rec *out);
void peft_plan_read_layer(const peft_plan *plan, int32_t i, peft_layer_rec *out);
void peft_plan_read_buffer(const peft_plan *plan, int32_t i, peft_buffer_rec *out);

/* Arena offset of a work buffer, or PEFT_NONE when the plan has none such
 * (binary search: the table is sorted by arena, kind, owner, part). */
uint32_t peft_plan_buffer_offset(const peft_plan *plan, int arena, peft_buffer_kind kind,
				 int32_t owner, int32_t part);

/* Decode layer i with its derived flags. Valid after the field checks of
 * peft_plan_load() (it relies on consistent shapes and compiled methods). */
peft_status peft_plan_layer_info(const peft_plan *plan, int32_t i, peft_layer_info *out);

/* The layout check of peft_plan_load() (peft_plan_layout.c). */
peft_status peft_plan_check_layout(const peft_plan *plan);

/* The training work region at its peak: the first step where it is used up to
 * its end, and the bytes then live of kept values and of gradients. */
typedef struct {
	int32_t step;
	uint32_t kept;
	uint32_t grads;
} peft_work_peak;

peft_status peft_plan_work_peak(const peft_plan *plan, peft_work_peak *out);

/* Every dimension and the element count within PEFT_MAX_TENSOR_ELEMENTS,
 * tested in an order in which no product can overflow (each partial product
 * is at most 2^24 before the next factor of at most 2^24). */
static inline bool peft_shape_ok(int32_t h, int32_t w, int32_t c)
{
	const int64_t max = PEFT_MAX_TENSOR_ELEMENTS;

	return h > 0 && w > 0 && c > 0 && h <= max && w <= max && c <= max &&
	       (int64_t)h * w <= max && (int64_t)h * w * c <= max;
}

/* Elements of a tensor record. peft_plan_load() refuses a plan with a shape
 * outside peft_shape_ok(), so 0 here cannot happen on a loaded plan; it only
 * keeps the product defined for any input. */
static inline int32_t peft_tensor_elements(const peft_tensor_rec *r)
{
	return peft_shape_ok(r->h, r->w, r->c) ? r->h * r->w * r->c : 0;
}

static inline uint32_t peft_align16(uint32_t n)
{
	return (n + PEFT_ALIGN - 1u) & ~(PEFT_ALIGN - 1u);
}

#endif /* PEFT_PLAN_INTERNAL_H */
