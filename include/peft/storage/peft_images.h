/**
 * @file peft_images.h
 * @brief Checks of the partition images written by `micropeft pack`.
 *
 * The model+plan container (partition peft_model) and the dataset blob
 * (peft_dataset), layouts in docs/formats.md. Both are read in place (the
 * weights stay in flash, see peft_flash_area.h); nothing is copied. Portable:
 * no Zephyr in here, tested on the host.
 */
#ifndef PEFT_STORAGE_PEFT_IMAGES_H
#define PEFT_STORAGE_PEFT_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#include "peft/peft_formats.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Result of checking an image. Each failure has its own message. */
enum peft_image_status {
	PEFT_IMAGE_OK = 0,
	PEFT_IMAGE_ERASED,    /**< The partition holds nothing (erased flash): not flashed. */
	PEFT_IMAGE_TRUNCATED, /**< Shorter than its header, or its total exceeds the partition. */
	PEFT_IMAGE_MAGIC,     /**< Not this kind of image. */
	PEFT_IMAGE_VERSION,   /**< A format version this firmware does not read. */
	PEFT_IMAGE_CRC,       /**< CRC32 mismatch: corrupted or partially written. */
	PEFT_IMAGE_FIELD,     /**< A field is inconsistent (offsets, sizes, counts). */
	PEFT_IMAGE_MODEL_CRC, /**< The model inside the container fails its own CRC32. */
};

/* Magic, version and layout of both images: PEFT_CONTAINER_* and PEFT_DATASET_* of
 * peft/peft_formats.h. */
/** The container's header size, under the name tests/fuzz uses. */
#define PEFT_MODEL_IMAGE_HEADER_SIZE PEFT_CONTAINER_HEADER_SIZE

struct peft_model_image {
	const uint8_t *model; /**< The device .tflite (16-byte aligned in the container). */
	size_t model_len;
	const uint8_t *plan; /**< The plan blob. */
	size_t plan_len;
	size_t total; /**< Bytes of the container. */
};

struct peft_dataset_image {
	uint32_t n_train;
	uint32_t n_test;
	uint16_t h, w, c;
	uint16_t num_classes;
	float scale; /**< Quantization of the samples (the model input's). */
	int32_t zero_point;
	uint32_t sample_bytes; /**< h * w * c */
	const int8_t *samples; /**< n_train + n_test samples, train first. */
	const uint8_t *labels; /**< One byte per sample, same order. */
	size_t total;
};

/** @brief Check and decode a model+plan container of at most @p avail bytes. */
enum peft_image_status peft_model_image_parse(const uint8_t *data, size_t avail,
					      struct peft_model_image *out);

/** @brief Check and decode a dataset blob of at most @p avail bytes. */
enum peft_image_status peft_dataset_image_parse(const uint8_t *data, size_t avail,
						struct peft_dataset_image *out);

/** @brief One-line description of a status. */
const char *peft_image_status_str(enum peft_image_status status);

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STORAGE_PEFT_IMAGES_H */
