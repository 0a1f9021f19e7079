/**
 * @file peft_trainer.h
 * @brief Training and inference of the trainable part of a model, in one arena.
 *
 * The caller owns one arena of peft_plan_arena_size() bytes (16-byte aligned)
 * and a loaded plan. peft_trainer_train_sample_*() runs forward, loss and
 * backward for one sample and ADDS its gradients; peft_trainer_step() applies
 * the mean over the samples since the previous step (gradient accumulation)
 * and zeroes the gradients. Nothing is allocated.
 */
#ifndef PEFT_TRAINER_H
#define PEFT_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "peft/peft_plan.h"
#include "peft/peft_state.h"
#include "peft/peft_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_trainer Trainer
 * @{
 */

/** Byte with which peft_trainer_init() fills the arena (high-water mark). */
#define PEFT_ARENA_CANARY 0xA5u

/** Default divergence bounds (peft_trainer_set_limits()): a cross-entropy loss
 * above 1000 means a logit gap of 1000, and trained weights of a quantized
 * model sit far below 1e4 in magnitude. */
#define PEFT_DEFAULT_MAX_LOSS  1000.0f
#define PEFT_DEFAULT_MAX_PARAM 1.0e4f

/** A trainer. Caller-owned; filled by peft_trainer_init(). */
typedef struct {
	const peft_plan *plan;
	peft_mode mode;
	uint8_t *arena;
	size_t arena_size;
	uint32_t step;         /**< Optimizer steps taken (Adam's t). */
	uint32_t samples;      /**< Samples accumulated since the last step. */
	int32_t pending_label; /**< Label of a one-sample forward awaiting its backward, or -1. */
	/** Labels of the forward awaiting its backward (caller's array for a batch,
	 *  pending_label for one sample), and their number; 0 when none awaits. */
	const int32_t *pending_labels;
	int32_t pending_samples;
	float max_loss;  /**< A forward whose loss exceeds it returns PEFT_ERR_DIVERGED. */
	float max_param; /**< A step that would take a parameter beyond +-max_param is refused. */
} peft_trainer;

/** One trainable array, as peft_trainer_param_info() describes it. */
typedef struct {
	int32_t layer;       /**< Plan layer index (0 = first layer the runtime runs). */
	int32_t graph_layer; /**< Index of that layer in the planner's graph. */
	peft_param_kind kind;
	/** The parameters, in the kernel layout. A caller that writes them must call
	 *  peft_trainer_params_changed() before the next forward, backward or step. */
	float *data;
	const float *grad; /**< Their summed gradients (NULL in infer mode). */
	int32_t count;     /**< Number of floats. */
} peft_param_info;

/**
 * @brief Prepare a trainer: fill the arena with PEFT_ARENA_CANARY, then
 *        initialise the parameters (dequantised weights/biases, gamma = 1,
 *        beta = 0, LoRA A from the plan seed, LoRA B = 0) and zero gradients
 *        and optimizer state.
 * @param t          the trainer to fill.
 * @param plan       a loaded plan; must outlive the trainer.
 * @param mode       PEFT_MODE_TRAIN or PEFT_MODE_INFER.
 * @param arena      16-byte aligned memory.
 * @param arena_size its size: at least peft_plan_arena_size(plan, mode).
 * @return PEFT_OK, PEFT_ERR_ARG, or PEFT_ERR_BUFFER_TOO_SMALL.
 */
peft_status peft_trainer_init(peft_trainer *t, const peft_plan *plan, peft_mode mode, void *arena,
			      size_t arena_size);

/**
 * @brief Set the divergence bounds (peft_trainer_init() sets the defaults
 *        PEFT_DEFAULT_MAX_LOSS and PEFT_DEFAULT_MAX_PARAM).
 * @param t         a trainer.
 * @param max_loss  a forward whose loss is above it returns PEFT_ERR_DIVERGED and
 *                  adds nothing (> 0; INFINITY disables the check).
 * @param max_param peft_trainer_step() refuses an update that would take a
 *                  parameter beyond +-max_param (> 0; INFINITY disables it).
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_trainer_set_limits(peft_trainer *t, float max_loss, float max_param);

/**
 * @brief Forward, loss, backward for one int8 sample; gradients are added.
 * @param t     a trainer in PEFT_MODE_TRAIN.
 * @param input the split tensor, int8 with the plan's input quantization.
 * @param label the class, 0 <= label < num_classes.
 * @param loss  receives the cross-entropy loss (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_NUMERIC (non-finite input or loss) or
 *         PEFT_ERR_DIVERGED (loss above max_loss); on an error the sample adds
 *         no gradient.
 */
peft_status peft_trainer_train_sample_s8(peft_trainer *t, const int8_t *input, int32_t label,
					 float *loss);

/**
 * @brief As peft_trainer_train_sample_s8() with a float32 input.
 * @param t     a trainer in PEFT_MODE_TRAIN.
 * @param input the split tensor as float32 (h * w * c values).
 * @param label the class.
 * @param loss  receives the loss (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, or PEFT_ERR_NUMERIC.
 */
peft_status peft_trainer_train_sample_f32(peft_trainer *t, const float *input, int32_t label,
					  float *loss);

/**
 * @brief The first half of peft_trainer_train_sample_s8(): forward and loss,
 *        keeping what backward needs. peft_trainer_backward() must follow
 *        before any other call on this trainer (lets a profiler time the phases).
 * @param t     a trainer in PEFT_MODE_TRAIN.
 * @param input the split tensor, int8 with the plan's input quantization.
 * @param label the class, 0 <= label < num_classes.
 * @param loss  receives the loss (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, or PEFT_ERR_NUMERIC.
 */
peft_status peft_trainer_forward_s8(peft_trainer *t, const int8_t *input, int32_t label,
				    float *loss);

/**
 * @brief As peft_trainer_forward_s8() with a float32 input.
 * @param t     a trainer in PEFT_MODE_TRAIN.
 * @param input the split tensor as float32.
 * @param label the class.
 * @param loss  receives the loss (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, or PEFT_ERR_NUMERIC.
 */
peft_status peft_trainer_forward_f32(peft_trainer *t, const float *input, int32_t label,
				     float *loss);

/**
 * @brief The second half: backward of the preceding peft_trainer_forward_*(),
 *        adding the sample's gradients.
 * @param t a trainer whose last call was a successful forward.
 * @return PEFT_OK, or PEFT_ERR_ARG when no forward awaits its backward.
 */
peft_status peft_trainer_backward(peft_trainer *t);

/**
 * @brief The first half of peft_trainer_train_batch_s8(): forward and losses of
 *        up to the batch capacity of samples at once, keeping what backward
 *        needs; peft_trainer_backward() must follow before any other call on
 *        this trainer, with @p labels still valid (lets a profiler time the
 *        phases of a batch). Unlike peft_trainer_train_batch_s8(), a sample that
 *        may not add its gradient fails the whole call: nothing awaits backward.
 * @param t       a trainer in PEFT_MODE_TRAIN.
 * @param inputs  @p samples split tensors, one after the other, int8.
 * @param labels  @p samples classes (read again by peft_trainer_backward()).
 * @param samples 1 .. peft_plan_batch_capacity().
 * @param losses  receives each sample's loss (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_NUMERIC or PEFT_ERR_DIVERGED.
 */
peft_status peft_trainer_forward_batch_s8(peft_trainer *t, const int8_t *inputs,
					  const int32_t *labels, int32_t samples, float *losses);

/**
 * @brief Apply one optimizer update with the mean gradient of the samples since
 *        the last step (clipped to the plan's global norm if clip_norm > 0), then
 *        zero the gradients. Without samples it does nothing.
 *
 * Atomic: every new parameter and optimizer value is computed and checked
 * before the first is written. On PEFT_ERR_NUMERIC (a non-finite gradient,
 * or an update or optimizer state that would not be finite) or
 * PEFT_ERR_DIVERGED (a parameter would leave +-max_param), parameters,
 * optimizer state and the step counter are unchanged and the gradients are
 * cleared.
 * @param t a trainer in PEFT_MODE_TRAIN.
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_NUMERIC or PEFT_ERR_DIVERGED.
 */
peft_status peft_trainer_step(peft_trainer *t);

/**
 * @brief Recompute what the runtime derives from the parameters alone and keeps
 *        in the arena between samples (DoRA's per-channel norm ||W0 + s B A||).
 *
 * peft_trainer_init(), peft_trainer_step(), a per-layer update and the state
 * imports call it themselves; a caller calls it after writing parameters
 * through peft_param_info.data, or forward and backward use the norms of the
 * old values.
 * @param t a trainer (either mode).
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_trainer_params_changed(peft_trainer *t);

/**
 * @brief Forward pass only (either mode).
 * @param t         a trainer.
 * @param input     the split tensor, int8.
 * @param logits    receives num_classes floats (may be NULL).
 * @param predicted receives the argmax (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, or PEFT_ERR_LOGITS_NONFINITE (a logit, or a
 *         value on the way to it, is NaN or infinite; nothing is written to
 *         @p logits or @p predicted).
 */
peft_status peft_trainer_predict_s8(peft_trainer *t, const int8_t *input, float *logits,
				    int32_t *predicted);

/**
 * @brief As peft_trainer_predict_s8() with a float32 input.
 * @param t         a trainer.
 * @param input     the split tensor as float32.
 * @param logits    receives num_classes floats (may be NULL).
 * @param predicted receives the argmax (may be NULL).
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_NUMERIC (non-finite input) or
 *         PEFT_ERR_LOGITS_NONFINITE.
 */
peft_status peft_trainer_predict_f32(peft_trainer *t, const float *input, float *logits,
				     int32_t *predicted);

/**
 * @brief Forward, loss and backward of up to the plan's batch capacity of int8
 *        samples in one pass: each layer runs over all of them at once (the
 *        per-sample buffers hold them one after the other). The gradients add
 *        up as `samples` peft_trainer_train_sample_s8() calls would add them (the
 *        same values; sums over the samples may round differently).
 *
 * A sample whose loss is not finite or above max_loss, or whose input is not
 * finite, adds nothing, as with peft_trainer_train_sample_*(); the others
 * still train (the call then runs them one at a time).
 * @param t        a trainer in PEFT_MODE_TRAIN.
 * @param inputs   @p samples split tensors, one after the other, int8.
 * @param labels   @p samples classes, each 0 <= label < num_classes.
 * @param samples  1 .. peft_plan_batch_capacity().
 * @param losses   receives each sample's loss, NaN for one that added nothing
 *                 (may be NULL).
 * @param statuses receives each sample's status (may be NULL).
 * @return PEFT_OK when every sample trained; PEFT_ERR_ARG (a bad argument or
 *         label: nothing trained); else the first failing sample's status.
 */
peft_status peft_trainer_train_batch_s8(peft_trainer *t, const int8_t *inputs,
					const int32_t *labels, int32_t samples, float *losses,
					peft_status *statuses);

/**
 * @brief As peft_trainer_train_batch_s8() with float32 inputs.
 * @param t        a trainer in PEFT_MODE_TRAIN.
 * @param inputs   @p samples split tensors as float32, one after the other.
 * @param labels   @p samples classes.
 * @param samples  1 .. peft_plan_batch_capacity().
 * @param losses   receives each sample's loss (may be NULL).
 * @param statuses receives each sample's status (may be NULL).
 * @return as peft_trainer_train_batch_s8().
 */
peft_status peft_trainer_train_batch_f32(peft_trainer *t, const float *inputs,
					 const int32_t *labels, int32_t samples, float *losses,
					 peft_status *statuses);

/**
 * @brief Forward pass of up to the batch capacity of int8 samples at once
 *        (either mode): the values peft_trainer_predict_s8() gives each.
 * @param t         a trainer.
 * @param inputs    @p samples split tensors, one after the other, int8.
 * @param samples   1 .. peft_plan_batch_capacity().
 * @param logits    receives num_classes floats per sample (may be NULL).
 * @param predicted receives each argmax (may be NULL).
 * @param statuses  receives each sample's status (may be NULL).
 * @return PEFT_OK when every sample has its answer; PEFT_ERR_ARG; else the
 *         first failing sample's status (its logits and argmax not written).
 */
peft_status peft_trainer_predict_batch_s8(peft_trainer *t, const int8_t *inputs, int32_t samples,
					  float *logits, int32_t *predicted, peft_status *statuses);

/**
 * @brief As peft_trainer_predict_batch_s8() with float32 inputs.
 * @param t         a trainer.
 * @param inputs    @p samples split tensors as float32, one after the other.
 * @param samples   1 .. peft_plan_batch_capacity().
 * @param logits    receives num_classes floats per sample (may be NULL).
 * @param predicted receives each argmax (may be NULL).
 * @param statuses  receives each sample's status (may be NULL).
 * @return as peft_trainer_predict_batch_s8().
 */
peft_status peft_trainer_predict_batch_f32(peft_trainer *t, const float *inputs, int32_t samples,
					   float *logits, int32_t *predicted,
					   peft_status *statuses);

/**
 * @brief Size of the state blob that peft_trainer_export_state() writes.
 * @param t     a trainer.
 * @param bytes receives the size.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_trainer_state_size(const peft_trainer *t, size_t *bytes);

/**
 * @brief Write the state blob (header, trainable parameters, optimizer state).
 *        Accumulated, not yet applied gradients are not part of it.
 * @param t       a trainer in PEFT_MODE_TRAIN.
 * @param buf     destination.
 * @param size    its size.
 * @param written receives the number of bytes written (may be NULL).
 * @param meta    caller metadata to store (NULL: zeros).
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_BUFFER_TOO_SMALL, or
 *         PEFT_ERR_PARAMS_NONFINITE (a parameter or optimizer value is NaN or
 *         infinite: nothing is written).
 */
peft_status peft_trainer_export_state(const peft_trainer *t, void *buf, size_t size,
				      size_t *written, const peft_state_meta *meta);

/**
 * @brief Bytes [@p offset, @p offset + @p len) of the blob that
 *        peft_trainer_export_state() writes, so that a caller streams the state
 *        to flash through a small buffer (the header holds the CRC of the whole
 *        blob: write it last).
 * @param t      a trainer in PEFT_MODE_TRAIN.
 * @param meta   caller metadata to store (NULL: zeros).
 * @param offset first byte of the blob wanted.
 * @param dst    destination of @p len bytes.
 * @param len    bytes wanted.
 * @return PEFT_OK, PEFT_ERR_ARG, PEFT_ERR_BUFFER_TOO_SMALL (the range ends beyond
 *         the blob), or PEFT_ERR_PARAMS_NONFINITE (nothing is written).
 */
peft_status peft_trainer_export_state_range(const peft_trainer *t, const peft_state_meta *meta,
					    size_t offset, void *dst, size_t len);

/** Reads @p len bytes at @p offset of a state blob kept elsewhere (flash);
 *  returns 0, or nonzero when the read fails. */
typedef int (*peft_state_read_fn)(void *ctx, size_t offset, void *dst, size_t len);

/**
 * @brief peft_trainer_import_state() for a blob read through @p read: the CRC
 *        and every value are checked through @p buf first, then the arrays are
 *        read straight into the arena.
 * @param size     bytes readable (may exceed the blob's declared length).
 * @param buf      scratch of @p buf_size bytes, at least PEFT_STATE_HEADER_SIZE.
 * @return as peft_trainer_import_state(); PEFT_ERR_STATE_TRUNCATED also when a
 *         read fails. Nothing is changed unless every check passes, except when
 *         a read fails while the arrays are copied (after the same bytes read
 *         well once): then the trainer is partly loaded and must be
 *         re-initialised or loaded again.
 */
peft_status peft_trainer_import_state_from(peft_trainer *t, peft_state_read_fn read, void *ctx,
					   size_t size, uint8_t *buf, size_t buf_size,
					   peft_state_meta *meta_out);

/**
 * @brief Check a state blob and load it (a trainer in PEFT_MODE_INFER loads the
 *        parameters only). Nothing is changed unless every check passes.
 * @param t        a trainer.
 * @param buf      the blob.
 * @param size     bytes available (may exceed the blob's declared length).
 * @param meta_out receives the stored metadata (may be NULL).
 * @return PEFT_OK or the specific PEFT_ERR_STATE_* / PEFT_ERR_ARG code
 *         (PEFT_ERR_STATE_NONFINITE: a stored value is NaN or infinite).
 */
peft_status peft_trainer_import_state(peft_trainer *t, const void *buf, size_t size,
				      peft_state_meta *meta_out);

/**
 * @brief Highest arena byte written since peft_trainer_init() (scans for the
 *        last byte that differs from the canary).
 * @param t     a trainer.
 * @param bytes receives the offset of that byte + 1 (0 if none).
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_trainer_arena_high_water(const peft_trainer *t, size_t *bytes);

/**
 * @brief Number of trainable arrays.
 * @param t     a trainer.
 * @param count receives it.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_trainer_param_count(const peft_trainer *t, int32_t *count);

/**
 * @brief Describe trainable array @p index (layer order; within a layer weight,
 *        bias, gamma, beta, lora_a, lora_b).
 * @param t     a trainer.
 * @param index 0 <= index < peft_trainer_param_count().
 * @param info  receives the description.
 * @return PEFT_OK or PEFT_ERR_ARG.
 */
peft_status peft_trainer_param_info(const peft_trainer *t, int32_t index, peft_param_info *info);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_TRAINER_H */
