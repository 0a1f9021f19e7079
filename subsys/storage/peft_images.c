/*
 * Model+plan container and dataset blob readers. Layouts (little-endian,
 * docs/formats.md; writers: scripts/micropeft/pack.py and datasets.py):
 *
 * container header, 64 bytes:
 *   0 magic "PEFM" | 4 u16 version | 6 u16 header size | 8 u32 total
 *   12 u32 CRC32 of bytes [16, total) | 16 u32 model offset | 20 u32 model length
 *   24 u32 plan offset | 28 u32 plan length | 32 u32 CRC32 of the model | 36..63 zero
 * dataset header, 64 bytes:
 *   0 magic "PEFD" | 4 u16 version | 6 u16 header size | 8 u32 total
 *   12 u32 CRC32 of bytes [16, total) | 16 u32 train count | 20 u32 test count
 *   24 u16 h | 26 u16 w | 28 u16 c | 30 u16 classes | 32 f32 scale | 36 i32 zero point
 *   40 u32 sample bytes | 44 u32 samples offset | 48 u32 labels offset | 52..63 zero
 */
#include "peft/storage/peft_images.h"

#include <string.h>

#include "peft/peft_crc32.h"

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

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

/* Common header: magic, version, header size, total, CRC. */
static enum peft_image_status check_header(const uint8_t *data, size_t avail, uint32_t magic,
					   uint32_t version, uint32_t header_size, size_t *total)
{
	if (data == NULL || avail < header_size) {
		return PEFT_IMAGE_TRUNCATED;
	}
	if (is_erased(data, header_size)) {
		return PEFT_IMAGE_ERASED;
	}
	if (rd32(data) != magic) {
		return PEFT_IMAGE_MAGIC;
	}
	if (rd16(data + 4) != version || rd16(data + 6) != header_size) {
		return PEFT_IMAGE_VERSION;
	}
	const uint32_t n = rd32(data + 8);

	if (n < header_size || n > avail) {
		return PEFT_IMAGE_TRUNCATED;
	}
	if (peft_crc32_update(0, data + 16, n - 16u) != rd32(data + 12)) {
		return PEFT_IMAGE_CRC;
	}
	*total = n;
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
	enum peft_image_status s = check_header(data, avail, PEFT_MODEL_IMAGE_MAGIC,
						PEFT_MODEL_IMAGE_VERSION,
						PEFT_MODEL_IMAGE_HEADER_SIZE, &total);

	if (s != PEFT_IMAGE_OK) {
		return s;
	}
	const uint32_t m_off = rd32(data + 16), m_len = rd32(data + 20);
	const uint32_t p_off = rd32(data + 24), p_len = rd32(data + 28);

	/* TFLM and the plan reader need 16- and 4-byte aligned bases. */
	if (m_len == 0u || p_len == 0u || (m_off % 16u) != 0u || (p_off % 4u) != 0u ||
	    !span_ok(m_off, m_len, PEFT_MODEL_IMAGE_HEADER_SIZE, total) ||
	    !span_ok(p_off, p_len, PEFT_MODEL_IMAGE_HEADER_SIZE, total)) {
		return PEFT_IMAGE_FIELD;
	}
	if (peft_crc32_update(0, data + m_off, m_len) != rd32(data + 32)) {
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
	enum peft_image_status s = check_header(data, avail, PEFT_DATASET_IMAGE_MAGIC,
						PEFT_DATASET_IMAGE_VERSION,
						PEFT_DATASET_IMAGE_HEADER_SIZE, &total);

	if (s != PEFT_IMAGE_OK) {
		return s;
	}
	struct peft_dataset_image d;

	d.n_train = rd32(data + 16);
	d.n_test = rd32(data + 20);
	d.h = rd16(data + 24);
	d.w = rd16(data + 26);
	d.c = rd16(data + 28);
	d.num_classes = rd16(data + 30);
	const uint32_t scale_bits = rd32(data + 32);

	memcpy(&d.scale, &scale_bits, sizeof(d.scale));
	d.zero_point = (int32_t)rd32(data + 36);
	d.sample_bytes = rd32(data + 40);
	const uint32_t s_off = rd32(data + 44), l_off = rd32(data + 48);
	const uint64_t count = (uint64_t)d.n_train + d.n_test;

	if (d.h == 0u || d.w == 0u || d.c == 0u || d.num_classes < 2u || d.n_train == 0u ||
	    (uint32_t)d.h * d.w * d.c != d.sample_bytes || !(d.scale > 0.0f) ||
	    d.zero_point < -128 || d.zero_point > 127 || count > UINT32_MAX ||
	    count * d.sample_bytes > UINT32_MAX ||
	    !span_ok(s_off, (uint32_t)(count * d.sample_bytes), PEFT_DATASET_IMAGE_HEADER_SIZE, total) ||
	    !span_ok(l_off, (uint32_t)count, PEFT_DATASET_IMAGE_HEADER_SIZE, total)) {
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
