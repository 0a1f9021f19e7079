/**
 * @file peft_plan.h
 * @brief The plan: what the runtime trains, and where every buffer lives.
 *
 * A plan blob (docs/formats.md, "Plan blob") is written by the Python planner
 * (scripts/micropeft/planning/plan.py) for one int8 .tflite model. peft_plan_load()
 * checks every field against the blob and the model, recomputes the arena
 * layout with the planner's algorithm and refuses a plan whose stored offsets
 * differ. The plan keeps pointers to the blob and the model (both stay
 * where they are, e.g. in flash) and a decoded copy of the header; layer and
 * tensor records are read from the blob on demand.
 */
#ifndef PEFT_PLAN_H
#define PEFT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "peft/peft_formats.h"
#include "peft/peft_kernels.h"
#include "peft/peft_optim.h"
#include "peft/peft_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_plan Plan
 * @{
 */

/* The plan format (PEFT_PLAN_VERSION, record layouts, peft_cache_dtype,
 * peft_param_kind): peft/peft_formats.h. */

/** Which arena a size or a trainer refers to. */
typedef enum {
	PEFT_MODE_TRAIN = 0, /**< forward + backward + optimizer. */
	PEFT_MODE_INFER = 1, /**< forward only, with the (adapted) parameters. */
} peft_mode;

/** How the training arena splits (bytes; each part a multiple of 16). The work
 * region (laid out by lifetime) is split by what is live at its peak. */
typedef struct {
	size_t cached_activations; /**< Values kept for backward, live at the peak. */
	size_t gradients;          /**< Parameter gradients + activation gradients at the peak. */
	size_t parameters;         /**< Trainable parameters (frozen ones stay in the model). */
	size_t optimizer_state;    /**< Momentum / Adam moments. */
	size_t scratch;            /**< The rest of the work region: temporaries, scratch, holes. */
	size_t total;              /**< Sum of the five: the training arena size. */
} peft_arena_breakdown;

/** One region of the arena (byte offset from the arena base, size in bytes). */
typedef struct {
	uint32_t offset;
	uint32_t size;
} peft_region;

/** A loaded plan. Caller-owned; filled by peft_plan_load(); treat as read-only. */
typedef struct {
	const uint8_t *blob;  /**< The plan blob (not copied). */
	size_t blob_len;      /**< Its declared total length. */
	const uint8_t *model; /**< The .tflite model (not copied; weights read in place). */
	size_t model_len;
	uint32_t crc;  /**< The plan's CRC32 (identifies it in a state blob). */
	uint32_t seed; /**< Seed of the LoRA initialisation. */
	int32_t num_tensors;
	int32_t num_layers;
	int32_t input_tensor;  /**< Plan tensor index of the input (crosses the split). */
	int32_t output_tensor; /**< Plan tensor index of the logits. */
	int32_t num_classes;
	peft_cache_dtype act_cache;
	peft_update_mode update;
	uint32_t flags; /**< Plan options: PEFT_PLAN_FLAG_* bits. */
	int32_t batch;  /**< Batch capacity: samples one trainer call runs together. */
	peft_optimizer_config optimizer;
	int32_t num_buffers;       /**< Work-region buffer records (both arenas). */
	uint32_t trainable_params; /**< Number of trainable float parameters. */
	peft_region params;        /**< Same offset in both arenas. */
	peft_region param_grads;   /**< Train arena (empty with PEFT_UPDATE_LAYER). */
	peft_region optimizer_state;
	peft_region work; /**< Train arena: buffers laid out by lifetime. */
	uint32_t train_size;
	peft_region infer_work; /**< Infer arena. */
	uint32_t infer_size;
} peft_plan;

/**
 * @brief Check a plan blob against its model and decode its header.
 *
 * Checks, in order: arguments, 4-byte alignment of blob and model, magic,
 * version, lengths, CRC32, the model's CRC32 and length, every field (ops,
 * shapes, indices, methods, optimizer), every weight reference (inside the
 * model, aligned, counts consistent with shapes), that the methods and the
 * optimizer are compiled in (and the int8 backward path when the plan's flags
 * ask for it: PEFT_ERR_PLAN_INT8_NOT_COMPILED without CONFIG_PEFT_INT8_BACKWARD), and that every
 * stored arena offset equals the runtime's own layout.
 *
 * @param plan      filled on success (untouched contents are meaningless on failure).
 * @param blob      the plan blob (4-byte aligned); may be longer than its declared length.
 * @param blob_len  bytes available at @p blob.
 * @param model     the .tflite the plan was made for (4-byte aligned); must outlive the plan.
 * @param model_len its length.
 * @return PEFT_OK or the specific PEFT_ERR_PLAN_* / PEFT_ERR_ARG code.
 */
peft_status peft_plan_load(peft_plan *plan, const void *blob, size_t blob_len, const void *model,
			   size_t model_len);

/**
 * @brief Exact arena size that peft_trainer_init() needs.
 * @param plan  a loaded plan.
 * @param mode  PEFT_MODE_TRAIN or PEFT_MODE_INFER.
 * @param bytes receives the size.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_arena_size(const peft_plan *plan, peft_mode mode, size_t *bytes);

/**
 * @brief How the training arena splits; the parts add up to the total.
 * @param plan a loaded plan.
 * @param out  receives the breakdown.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_arena_breakdown(const peft_plan *plan, peft_arena_breakdown *out);

/**
 * @brief Shape of the input tensor (the one that crosses the split).
 * @param plan a loaded plan.
 * @param dims receives h, w, c.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_input_dims(const peft_plan *plan, peft_dims *dims);

/**
 * @brief TFLite quantization of the input tensor (real = scale * (q - zero_point)).
 * @param plan       a loaded plan.
 * @param scale      receives the scale.
 * @param zero_point receives the zero point.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_input_quant(const peft_plan *plan, float *scale, int32_t *zero_point);

/**
 * @brief Number of classes (length of the logits).
 * @param plan a loaded plan.
 * @param n    receives the count.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_num_classes(const peft_plan *plan, int32_t *n);

/**
 * @brief Batch capacity: the most samples one peft_trainer_train_batch_*() or
 *        peft_trainer_predict_batch_*() call takes (the arena holds that many).
 * @param plan a loaded plan.
 * @param n    receives the capacity (1 .. PEFT_MAX_BATCH).
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_batch_capacity(const peft_plan *plan, int32_t *n);

/**
 * @brief Number of trainable float parameters (weights, biases, gamma/beta, LoRA factors).
 * @param plan  a loaded plan.
 * @param count receives the count.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_plan_trainable_params(const peft_plan *plan, size_t *count);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_PLAN_H */
