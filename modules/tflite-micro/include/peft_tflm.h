/**
 * @file peft_tflm.h
 * @brief C API of the TFLM glue: runs the frozen prefix of a model in TFLM.
 *
 * The device model (.tflite) written by `micropeft prepare-model` holds only
 * the frozen prefix: its operator list ends at the split point and its output
 * is the split activation (int8). This glue runs it in TFLM's MicroInterpreter
 * and hands that activation to the PEFT runtime, which runs the trainable
 * part (forward, backward, optimizer) and, after training, inference too.
 *
 * No heap: the interpreter and its op resolver are placed at the head of the
 * caller's arena, TFLM's tensors use the rest.
 */
#ifndef PEFT_TFLM_H
#define PEFT_TFLM_H

#include <stddef.h>
#include <stdint.h>

#include "peft/peft_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup peft_tflm TFLM glue (frozen prefix)
 * @{
 */

/** Why peft_tflm_init() failed (it returns a peft_status; this says more). */
typedef enum {
	PEFT_TFLM_ERROR_NONE = 0,
	PEFT_TFLM_ERROR_MODEL = 1,  /**< Not a valid .tflite flatbuffer (verifier failed). */
	PEFT_TFLM_ERROR_SCHEMA = 2, /**< Schema version TFLM does not read. */
	PEFT_TFLM_ERROR_GRAPH = 3,  /**< Not one subgraph with one input and one output. */
	PEFT_TFLM_ERROR_OPS = 4,    /**< An operator outside the glue's resolver, or bad op data. */
	PEFT_TFLM_ERROR_ARENA = 5,  /**< The arena is too small for the prefix's tensors. */
	PEFT_TFLM_ERROR_IO_TYPE = 6,        /**< Input or output is not int8. */
	PEFT_TFLM_ERROR_INVOKE = 7,         /**< A kernel failed while running. */
	PEFT_TFLM_ERROR_FC_PER_CHANNEL = 8, /**< Per-channel FULLY_CONNECTED weights, which
					     *   this (older) TFLM computes wrongly. */
} peft_tflm_error;

/** One int8 tensor at the edge of the prefix (batch 1). */
typedef struct {
	int32_t h;     /**< Height (1 for a vector). */
	int32_t w;     /**< Width (1 for a vector). */
	int32_t c;     /**< Channels (or vector length). */
	int32_t bytes; /**< h * w * c. */
	float scale;   /**< real = scale * (q - zero_point) */
	int32_t zero_point;
} peft_tflm_tensor_info;

/** An interpreter for one prefix model. Fields are private to the glue. */
typedef struct {
	void *interpreter; /**< tflite::MicroInterpreter inside the arena. */
	peft_tflm_tensor_info in;
	peft_tflm_tensor_info out;
	size_t arena_used;     /**< Bytes of the arena in use after allocation. */
	peft_tflm_error error; /**< Detail of the last failure. */
} peft_tflm;

/**
 * @brief Checks the model and prepares the interpreter in @p arena.
 *
 * @param ctx        context to fill (no other state is kept).
 * @param model      the prefix .tflite, 4-byte aligned, alive as long as @p ctx.
 * @param model_len  its length in bytes (the flatbuffer is verified within it).
 * @param arena      TFLM arena (interpreter object + tensors), alive as long as @p ctx.
 * @param arena_size its size in bytes.
 * @return PEFT_OK; PEFT_ERR_ARG for NULL or misaligned pointers; PEFT_ERR_PLAN_FIELD
 *         for a malformed model; PEFT_ERR_UNSUPPORTED for an unsupported operator or
 *         tensor type; PEFT_ERR_BUFFER_TOO_SMALL when the arena is too small.
 *         ctx->error says which.
 */
peft_status peft_tflm_init(peft_tflm *ctx, const void *model, size_t model_len, uint8_t *arena,
			   size_t arena_size);

/**
 * @brief Runs the prefix on one int8 input and copies out the split activation.
 * @param input_len   must equal ctx->in.bytes.
 * @param output_len  must equal ctx->out.bytes.
 * @return PEFT_OK, PEFT_ERR_ARG (NULL, wrong length, not initialized), PEFT_ERR_UNSUPPORTED
 *         when a kernel fails.
 */
peft_status peft_tflm_run_s8(peft_tflm *ctx, const int8_t *input, size_t input_len, int8_t *output,
			     size_t output_len);

/**
 * @brief Runs the prefix on one int8 input; the split activation stays in TFLM's
 *        output tensor (in the TFLM arena), so the caller needs no buffer of its own.
 * @param input_len must equal ctx->in.bytes.
 * @param output    receives a pointer to ctx->out.bytes int8 values, valid until the
 *                  next run.
 * @return as peft_tflm_run_s8().
 */
peft_status peft_tflm_run_s8_view(peft_tflm *ctx, const int8_t *input, size_t input_len,
				  const int8_t **output);

/** @brief A short, constant name for a glue error. */
const char *peft_tflm_error_str(peft_tflm_error error);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_TFLM_H */
