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

/* The record layouts (PEFT_PLAN_HDR_*, PEFT_PLAN_TENSOR_*, PEFT_PLAN_LAYER_*),
 * op and method codes, scratch item indices and limits: peft/peft_formats.h. */

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
	uint32_t cache_offset; /* train arena, or PEFT_NONE */
	uint32_t fwd_offset;   /* train arena forward temporary, or PEFT_NONE */
	uint32_t grad_offset;  /* train arena gradient slot, or PEFT_NONE */
	uint32_t infer_offset; /* infer arena */
	uint8_t cache_dtype;   /* peft_cache_dtype when cached, else 0 */
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
	uint32_t cache_z;
	uint32_t cache_u;
	uint32_t scratch_train[PEFT_S_TRAIN_COUNT];
	uint32_t scratch_infer[PEFT_S_INFER_COUNT];
} peft_layer_rec;

/* A layer record with everything derived from it and its tensors. */
typedef struct {
	peft_layer_rec rec;
	int32_t index;
	peft_dims in[2];
	peft_dims out;
	int32_t in_size[2];
	int32_t out_size;
	int32_t rows;         /* FC / LoRA rows */
	int32_t in_features;  /* FC input features, conv input channels */
	int32_t out_features; /* output channels */
	int32_t counts[PEFT_PARAM_KIND_COUNT];     /* floats per array (0: absent) */
	bool present[PEFT_PARAM_KIND_COUNT];       /* has a parameter buffer */
	bool trainable[PEFT_PARAM_KIND_COUNT];     /* has a gradient */
	bool runs_backward;
	bool backward_input[2];
	bool needs_input_values;  /* input kept for backward (weight / LoRA A gradients) */
	bool needs_output_values; /* output kept for backward (activation derivative) */
} peft_layer_info;

/* Read record i (no checks beyond what peft_plan_load() already did). */
void peft_plan_read_tensor(const peft_plan *plan, int32_t i, peft_tensor_rec *out);
void peft_plan_read_layer(const peft_plan *plan, int32_t i, peft_layer_rec *out);

/* Decode layer i with its derived flags. Valid after the field checks of
 * peft_plan_load() (it relies on consistent shapes and compiled methods). */
peft_status peft_plan_layer_info(const peft_plan *plan, int32_t i, peft_layer_info *out);

/* The layout check of peft_plan_load() (peft_plan_layout.c). */
peft_status peft_plan_check_layout(const peft_plan *plan);

static inline uint32_t peft_align16(uint32_t n)
{
	return (n + PEFT_ALIGN - 1u) & ~(PEFT_ALIGN - 1u);
}

#endif /* PEFT_PLAN_INTERNAL_H */
