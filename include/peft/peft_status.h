/**
 * @file peft_status.h
 * @brief Status codes returned by every micropeft function.
 */
#ifndef PEFT_STATUS_H
#define PEFT_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup peft_status Status codes
 * @{
 * Every call returns one of these; every call site checks it. Each plan or
 * blob failure has its own code so that a device can say exactly what is wrong.
 * The numeric values are part of the ABI (the Python binding mirrors them).
 */
typedef enum {
	PEFT_OK = 0,
	PEFT_ERR_ARG = 1,              /**< NULL pointer or out-of-range argument. */
	PEFT_ERR_BUFFER_TOO_SMALL = 2, /**< Caller's buffer or arena is smaller than required. */
	PEFT_ERR_UNSUPPORTED = 3,      /**< Operator/shape combination the kernels do not handle. */
	PEFT_ERR_NUMERIC = 4,          /**< A NaN or infinity appeared (loss, gradient or update);
					    a step returning it changed nothing. */
	PEFT_ERR_DIVERGED = 5,         /**< Loss above the trainer's bound, or an update would take a
					    parameter beyond its bound; nothing was applied. */
	PEFT_ERR_LOGITS_NONFINITE = 6, /**< predict: a logit is NaN or infinite. */
	PEFT_ERR_PARAMS_NONFINITE = 7, /**< export: a parameter or optimizer value is not finite;
					    nothing was written. */

	/* Plan blob (see docs/formats.md). */
	PEFT_ERR_PLAN_TRUNCATED = 10,      /**< Shorter than its header or its declared length. */
	PEFT_ERR_PLAN_MAGIC = 11,          /**< Not a plan blob. */
	PEFT_ERR_PLAN_VERSION = 12,        /**< Format version this runtime does not read. */
	PEFT_ERR_PLAN_LENGTH = 13,         /**< Declared length disagrees with the blob or sections. */
	PEFT_ERR_PLAN_CRC = 14,            /**< CRC32 mismatch: corrupted blob. */
	PEFT_ERR_PLAN_MODEL_MISMATCH = 15, /**< Plan was made for another model (CRC/length). */
	PEFT_ERR_PLAN_FIELD = 16,          /**< A field holds an invalid value (op, index, shape...). */
	PEFT_ERR_PLAN_MODEL_OFFSET = 17,   /**< A weight reference points outside the model. */
	PEFT_ERR_PLAN_ARENA_OFFSET = 18,   /**< A buffer offset disagrees with the runtime's layout. */
	PEFT_ERR_PLAN_METHOD_NOT_COMPILED = 19, /**< Plan needs a method/optimizer left out of the build. */
	PEFT_ERR_PLAN_ALIGNMENT = 20,      /**< Model or blob base not 4-byte aligned. */
	PEFT_ERR_PLAN_SHAPE = 21,          /**< A dimension or element count beyond the runtime's bound. */

	/* Trained-state blob. */
	PEFT_ERR_STATE_TRUNCATED = 30,
	PEFT_ERR_STATE_MAGIC = 31,
	PEFT_ERR_STATE_VERSION = 32,
	PEFT_ERR_STATE_LENGTH = 33,
	PEFT_ERR_STATE_CRC = 34,
	PEFT_ERR_STATE_PLAN_MISMATCH = 35, /**< State was saved for another plan. */
	PEFT_ERR_STATE_NONFINITE = 36,     /**< A stored parameter or optimizer value is not finite. */
} peft_status;

/** @brief A short, constant, human-readable name for a status code. */
const char *peft_status_str(peft_status status);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STATUS_H */
