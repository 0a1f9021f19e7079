/*
 * Readers of the partition images written by `micropeft pack`
 * (docs/formats.md): the model+plan container (peft_model) and the dataset
 * blob (peft_dataset). Both are read in place; nothing is copied.
 */
#ifndef PEFT_IMAGES_H
#define PEFT_IMAGES_H

#include <stddef.h>
#include <stdint.h>

/** Result of checking an image. Each failure has its own message. */
enum image_status {
	IMAGE_OK = 0,
	IMAGE_ERASED,    /**< The partition holds nothing (erased flash): not flashed. */
	IMAGE_TRUNCATED, /**< Shorter than its header, or its total exceeds the partition. */
	IMAGE_MAGIC,     /**< Not this kind of image. */
	IMAGE_VERSION,   /**< A format version this firmware does not read. */
	IMAGE_CRC,       /**< CRC32 mismatch: corrupted or partially written. */
	IMAGE_FIELD,     /**< A field is inconsistent (offsets, sizes, counts). */
	IMAGE_MODEL_CRC, /**< The model inside the container fails its own CRC32. */
};

/** The model+plan container (magic "PEFM"). */
#define MODEL_IMAGE_MAGIC 0x4d464550u /* "PEFM" little-endian */
#define MODEL_IMAGE_VERSION 1u
#define MODEL_IMAGE_HEADER_SIZE 64u

/** The dataset blob (magic "PEFD"). */
#define DATASET_IMAGE_MAGIC 0x44464550u /* "PEFD" */
#define DATASET_IMAGE_VERSION 1u
#define DATASET_IMAGE_HEADER_SIZE 64u

struct model_image {
	const uint8_t *model; /**< The device .tflite (16-byte aligned in the container). */
	size_t model_len;
	const uint8_t *plan;  /**< The plan blob. */
	size_t plan_len;
	size_t total;         /**< Bytes of the container. */
};

struct dataset_image {
	uint32_t n_train;
	uint32_t n_test;
	uint16_t h, w, c;
	uint16_t num_classes;
	float scale;          /**< Quantization of the samples (the model input's). */
	int32_t zero_point;
	uint32_t sample_bytes; /**< h * w * c */
	const int8_t *samples; /**< n_train + n_test samples, train first. */
	const uint8_t *labels; /**< One byte per sample, same order. */
	size_t total;
};

/** @brief Check and decode a model+plan container of at most @p avail bytes. */
enum image_status model_image_parse(const uint8_t *data, size_t avail, struct model_image *out);

/** @brief Check and decode a dataset blob of at most @p avail bytes. */
enum image_status dataset_image_parse(const uint8_t *data, size_t avail, struct dataset_image *out);

/** @brief One-line description of a status. */
const char *image_status_str(enum image_status status);

#endif /* PEFT_IMAGES_H */
