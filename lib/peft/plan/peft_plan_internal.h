/* Plan records as the runtime decodes them (private to lib/peft).
 * The byte layout is in docs/formats.md ("Plan blob"); records are copied out
 * of the blob with memcpy, so the blob needs no particular alignment beyond
 * the 4 bytes peft_plan_load() asks for. Little-endian, as every target is. */
#ifndef PEFT_PLAN_INTERNAL_H
#define PEFT_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_kernels.h"
#include "peft/peft_plan.h"

#define PEFT_PLAN_MAGIC 0x50464550u /* "PEFP" */
#define PEFT_PLAN_HEADER_SIZE 128u
#define PEFT_PLAN_TENSOR_SIZE 40u
#define PEFT_PLAN_LAYER_SIZE 216u
#define PEFT_NONE 0xFFFFFFFFu
#define PEFT_NO_INPUT 0xFFFFu
#define PEFT_ALIGN 16u
#define PEFT_MAX_SLOTS 64
#define PEFT_MAX_TENSOR_ELEMENTS (1 << 24)
#define PEFT_MAX_LORA_RANK 64

/* Operator codes (scripts/micropeft/graph.py Op). */
enum {
	PEFT_OP_CONV_2D = 1,
	PEFT_OP_DEPTHWISE_CONV_2D = 2,
	PEFT_OP_FULLY_CONNECTED = 3,
	PEFT_OP_ADD = 4,
	PEFT_OP_MEAN = 5,
	PEFT_OP_AVERAGE_POOL_2D = 6,
	PEFT_OP_PAD = 7,
	PEFT_OP_RESHAPE = 8,
};

/* Method flags (graph.py Method). */
enum {
	PEFT_METHOD_FULL = 1,
	PEFT_METHOD_LAST_LAYER = 2,
	PEFT_METHOD_BITFIT = 4,
	PEFT_METHOD_SCALE_SHIFT = 8,
	PEFT_METHOD_LORA = 16,
	PEFT_METHOD_SPARSE = 32,
	PEFT_METHOD_ALL = 63,
};

/* Train scratch items and infer scratch items of a layer record. */
enum { PEFT_S_IN0, PEFT_S_IN1, PEFT_S_OUT, PEFT_S_TMP_A, PEFT_S_TMP_B, PEFT_S_TRAIN_COUNT };
enum { PEFT_SI_LIN, PEFT_SI_TMP_A, PEFT_SI_TMP_B, PEFT_S_INFER_COUNT };

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
