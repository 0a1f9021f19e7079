/*
 * Model+plan container and dataset blob readers. Layouts: PEFT_CONTAINER_HDR_*
 * and PEFT_DATASET_HDR_* of peft/peft_formats.h (docs/formats.md; writers:
 * scripts/micropeft/deploy/pack.py and datasets.py).
 */
#include "peft/storage/peft_images.h"

#include "../../lib/peft/common/peft_blob.h"
#include "peft/peft_bytes.h"
#include "peft/peft_crc32.h"
#include "peft/peft_formats.h"

/* Flash reads 0xFF where nothing was written. */
static int is_erased(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != 0xFFu) {
			return 0;
		}
	}
	return 1;
}

/* The common header, checked by peft_blob_check (magic, version, header size, total,
 * CRC). It answers peft_status codes: these stand for the image statuses. */
static const peft_blob_errors image_header_errors = {
	.truncated = PEFT_ERR_STATE_TRUNCATED,
	.magic = PEFT_ERR_STATE_MAGIC,
	.version = PEFT_ERR_STATE_VERSION,
	.length = PEFT_ERR_STATE_LENGTH,
	.crc = PEFT_ERR_STATE_CRC,
};

static enum peft_image_status check_header(const uint8_t *data, size_t avail, uint32_t magic,
					   uint16_t version, uint16_t header_size, size_t *total)
{
	if (data == NULL || avail < header_size) {
		return PEFT_IMAGE_TRUNCATED;
	}
	if (is_erased(data, header_size)) {
		return PEFT_IMAGE_ERASED;
	}
	switch (peft_blob_check(data, avail, magic, version, header_size, &image_header_errors)) {
	case PEFT_OK:
		break;
	case PEFT_ERR_STATE_MAGIC:
		return PEFT_IMAGE_MAGIC;
	case PEFT_ERR_STATE_VERSION:
		return PEFT_IMAGE_VERSION;
	case PEFT_ERR_STATE_LENGTH:
		/* Another header size is another format version; a total under the header
		 * (the header size being right) is a truncated image. */
		return peft_rd16(data + PEFT_BLOB_HDR_OFF_HEADER_SIZE) != header_size
			       ? PEFT_IMAGE_VERSION
			       : PEFT_IMAGE_TRUNCATED;
	case PEFT_ERR_STATE_CRC:
		return PEFT_IMAGE_CRC;
	default: /* PEFT_ERR_STATE_TRUNCATED: the total exceeds the bytes there are */
		return PEFT_IMAGE_TRUNCATED;
	}
	*total = peft_rd32(data + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);
	return PEFT_IMAGE_OK;
}

/* [offset, offset + len) inside [header, total) without overflow. */
static int span_ok(uint32_t offset, uint32_t len, size_t header, size_t total)
{
	return offset >= header && offset <= total && len <= total - offset;
}

enum peft_image_status peft_model_image_parse(const uint8_t *data, size_t avail,
					      struct peft_model_image *out)
{
	size_t total = 0;
	enum peft_image_status s =
		check_header(data, avail, PEFT_CONTAINER_MAGIC, PEFT_CONTAINER_VERSION,
			     PEFT_CONTAINER_HEADER_SIZE, &total);

	if (s != PEFT_IMAGE_OK) {
		return s;
	}
	const uint32_t m_off = peft_rd32(data + PEFT_CONTAINER_HDR_OFF_MODEL_OFFSET),
		       m_len = peft_rd32(data + PEFT_CONTAINER_HDR_OFF_MODEL_LENGTH);
	const uint32_t p_off = peft_rd32(data + PEFT_CONTAINER_HDR_OFF_PLAN_OFFSET),
		       p_len = peft_rd32(data + PEFT_CONTAINER_HDR_OFF_PLAN_LENGTH);

	/* TFLM and the plan reader need 16- and 4-byte aligned bases. */
	if (m_len == 0u || p_len == 0u || (m_off % 16u) != 0u || (p_off % 4u) != 0u ||
	    !span_ok(m_off, m_len, PEFT_CONTAINER_HEADER_SIZE, total) ||
	    !span_ok(p_off, p_len, PEFT_CONTAINER_HEADER_SIZE, total)) {
		return PEFT_IMAGE_FIELD;
	}
	if (peft_crc32_update(0, data + m_off, m_len) !=
	    peft_rd32(data + PEFT_CONTAINER_HDR_OFF_MODEL_CRC)) {
		return PEFT_IMAGE_MODEL_CRC;
	}
	out->model = data + m_off;
	out->model_len = m_len;
	out->plan = data + p_off;
	out->plan_len = p_len;
	out->total = total;
	return PEFT_IMAGE_OK;
}

enum peft_image_status peft_dataset_image_parse(const uint8_t *data, size_t avail,
						struct peft_dataset_image *out)
{
	size_t total = 0;
	enum peft_image_status s =
		check_header(data, avail, PEFT_DATASET_MAGIC, PEFT_DATASET_VERSION,
			     PEFT_DATASET_HEADER_SIZE, &total);

	if (s != PEFT_IMAGE_OK) {
		return s;
	}
	struct peft_dataset_image d;

	d.n_train = peft_rd32(data + PEFT_DATASET_HDR_OFF_N_TRAIN);
	d.n_test = peft_rd32(data + PEFT_DATASET_HDR_OFF_N_TEST);
	d.h = peft_rd16(data + PEFT_DATASET_HDR_OFF_HEIGHT);
	d.w = peft_rd16(data + PEFT_DATASET_HDR_OFF_WIDTH);
	d.c = peft_rd16(data + PEFT_DATASET_HDR_OFF_CHANNELS);
	d.num_classes = peft_rd16(data + PEFT_DATASET_HDR_OFF_CLASSES);
	d.scale = peft_rdf32(data + PEFT_DATASET_HDR_OFF_INPUT_SCALE);
	d.zero_point = peft_rdi32(data + PEFT_DATASET_HDR_OFF_INPUT_ZERO_POINT);
	d.sample_bytes = peft_rd32(data + PEFT_DATASET_HDR_OFF_SAMPLE_BYTES);
	const uint32_t s_off = peft_rd32(data + PEFT_DATASET_HDR_OFF_SAMPLES_OFFSET),
		       l_off = peft_rd32(data + PEFT_DATASET_HDR_OFF_LABELS_OFFSET);
	const uint64_t count = (uint64_t)d.n_train + d.n_test;

	if (d.h == 0u || d.w == 0u || d.c == 0u || d.num_classes < PEFT_MIN_CLASSES ||
	    d.n_train == 0u || (uint32_t)d.h * d.w * d.c != d.sample_bytes || !(d.scale > 0.0f) ||
	    d.zero_point < -128 || d.zero_point > 127 || count > UINT32_MAX ||
	    count * d.sample_bytes > UINT32_MAX ||
	    !span_ok(s_off, (uint32_t)(count * d.sample_bytes), PEFT_DATASET_HEADER_SIZE, total) ||
	    !span_ok(l_off, (uint32_t)count, PEFT_DATASET_HEADER_SIZE, total)) {
		return PEFT_IMAGE_FIELD;
	}
	d.samples = (const int8_t *)(data + s_off);
	d.labels = data + l_off;
	for (uint32_t i = 0; i < count; i++) {
		if (d.labels[i] >= d.num_classes) {
			return PEFT_IMAGE_FIELD;
		}
	}
	d.total = total;
	*out = d;
	return PEFT_IMAGE_OK;
}

const char *peft_image_status_str(enum peft_image_status status)
{
	switch (status) {
	case PEFT_IMAGE_OK:
		return "ok";
	case PEFT_IMAGE_ERASED:
		return "partition is empty (erased): the image was not flashed";
	case PEFT_IMAGE_TRUNCATED:
		return "truncated: shorter than its header or its declared length";
	case PEFT_IMAGE_MAGIC:
		return "bad magic: not this kind of image";
	case PEFT_IMAGE_VERSION:
		return "unsupported format version";
	case PEFT_IMAGE_CRC:
		return "CRC mismatch: corrupted or partially written";
	case PEFT_IMAGE_FIELD:
		return "inconsistent header fields";
	case PEFT_IMAGE_MODEL_CRC:
		return "the model inside fails its CRC";
	}
	return "unknown";
}
