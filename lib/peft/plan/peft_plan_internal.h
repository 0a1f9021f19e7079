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
#define PEFT_PLAN_TENSOR_SIZE 24u
#define PEFT_PLAN_LAYER_SIZE 176u
#define PEFT_PLAN_BUFFER_SIZE 20u
#define PEFT_NONE 0xFFFFFFFFu
#define PEFT_NO_INPUT 0xFFFFu
#define PEFT_ALIGN 16u
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

/* Kinds of work-region buffers (plan.py BUFFER_KINDS; docs/formats.md). The owner
 * is a plan tensor (VALUE, KEEP, GRAD), a plan layer, or 0 (PROBS). */
typedef enum {
	PEFT_BUF_VALUE = 1,        /* a tensor's float values */
	PEFT_BUF_KEEP = 2,         /* a tensor kept int8 for a weight / LoRA A gradient */
	PEFT_BUF_GRAD = 3,         /* a tensor's activation gradient */
	PEFT_BUF_MASK = 4,         /* 1 bit per output: fused ReLU/ReLU6 derivative */
	PEFT_BUF_KEEP_LIN = 5,     /* scale+shift's pre-scale output (act_cache dtype) */
	PEFT_BUF_KEEP_U = 6,       /* LoRA's u, float */
	PEFT_BUF_PROBS = 7,        /* softmax output */
	PEFT_BUF_FWD_BIAS = 8,     /* a frozen bias dequantised from the model */
	PEFT_BUF_FWD_LIN = 9,      /* scale+shift's pre-scale output (forward scratch) */
	PEFT_BUF_FWD_LORA_OUT = 10, /* LoRA's B u */
	PEFT_BUF_FWD_U = 11,       /* LoRA's u (inference) */
	PEFT_BUF_BWD_IN = 12,      /* the kept int8 input, dequantised */
	PEFT_BUF_BWD_LIN = 13,     /* the kept pre-scale output, dequantised */
	PEFT_BUF_BWD_GLIN = 14,    /* scale+shift's gradient wrt its input */
	PEFT_BUF_BWD_DU = 15,      /* LoRA's gradient wrt u */
	PEFT_BUF_PARAM_GRAD = 16,  /* per-layer updates: a parameter gradient */
	PEFT_BUF_KIND_LAST = 16,
} peft_buffer_kind;

enum { PEFT_ARENA_TRAIN = 0, PEFT_ARENA_INFER = 1 };

/* One work-region buffer record. */
typedef struct {
	uint8_t kind;
	uint8_t arena;
	uint8_t part;   /* parameter kind of a PARAM_GRAD, else 0 */
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
	uint8_t cache_dtype;   /* peft_cache_dtype when kept for backward, else 0 */
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
	int32_t rows;         /* FC / LoRA rows */
	int32_t in_features;  /* FC input features, conv input channels */
	int32_t out_features; /* output channels */
	int32_t counts[PEFT_PARAM_KIND_COUNT];     /* floats per array (0: absent) */
	bool trainable[PEFT_PARAM_KIND_COUNT];     /* has a parameter buffer and a gradient */
	bool runs_backward;
	bool backward_input[2];
	bool needs_input_values; /* input kept for backward (weight / LoRA A gradients) */
	bool keeps_mask;         /* fused ReLU/ReLU6 derivative kept as a 1-bit mask */
} peft_layer_info;

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

static inline uint32_t peft_align16(uint32_t n)
{
	return (n + PEFT_ALIGN - 1u) & ~(PEFT_ALIGN - 1u);
}

#endif /* PEFT_PLAN_INTERNAL_H */
