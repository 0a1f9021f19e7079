/*
 * The partition image checks (subsys/storage/peft_images.c) on the host: the
 * sample's demo container and dataset parse, and each corruption of the layout in
 * docs/formats.md (made here by hand, the CRC re-signed where the check behind it
 * is the one under test) gives its own status.
 *
 * Usage: test_images <demo_model.bin> <demo_dataset.bin>
 */
#include <stdio.h>
#include <string.h>

#include "peft/peft_bytes.h"
#include "peft/peft_crc32.h"
#include "peft/peft_formats.h"
#include "peft/storage/peft_images.h"
#include "peft_test.h"

static uint8_t model_blob[65536] __attribute__((aligned(16)));
static uint8_t data_blob[65536] __attribute__((aligned(16)));
static uint8_t work[65536] __attribute__((aligned(16)));

static size_t load(const char *path, uint8_t *out)
{
	FILE *f = fopen(path, "rb");

	PEFT_CHECK(f != NULL);
	const size_t n = fread(out, 1, 65536, f);

	fclose(f);
	return n;
}

/* CRC32 of bytes [PEFT_BLOB_CRC_START, total) into the header, as pack.py signs an image. */
static void resign(uint8_t *blob)
{
	const uint32_t total = peft_rd32(blob + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);

	peft_wr32(blob + PEFT_BLOB_HDR_OFF_CRC,
		  peft_crc32_update(0, blob + PEFT_BLOB_CRC_START, total - PEFT_BLOB_CRC_START));
}

/* A copy of blob with byte `at` set to value (and the CRC re-signed if asked). */
static const uint8_t *corrupted(const uint8_t *blob, size_t n, size_t at, uint8_t value, int sign)
{
	memcpy(work, blob, n);
	work[at] = value;
	if (sign) {
		resign(work);
	}
	return work;
}

static enum peft_image_status model_after(size_t n, size_t at, uint8_t value, int sign)
{
	struct peft_model_image img;

	return peft_model_image_parse(corrupted(model_blob, n, at, value, sign), n, &img);
}

static enum peft_image_status data_after(size_t n, size_t at, uint8_t value, int sign)
{
	struct peft_dataset_image d;

	return peft_dataset_image_parse(corrupted(data_blob, n, at, value, sign), n, &d);
}

int main(int argc, char **argv)
{
	struct peft_model_image img;
	struct peft_dataset_image d;

	PEFT_CHECK(argc == 3);
	const size_t nm = load(argv[1], model_blob), nd = load(argv[2], data_blob);

	PEFT_CHECK_EQ_INT(peft_model_image_parse(model_blob, nm, &img), PEFT_IMAGE_OK);
	PEFT_CHECK_EQ_INT(img.total, peft_rd32(model_blob + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH));
	PEFT_CHECK(img.model ==
		   model_blob + peft_rd32(model_blob + PEFT_CONTAINER_HDR_OFF_MODEL_OFFSET));
	PEFT_CHECK_EQ_INT(img.model_len,
			  peft_rd32(model_blob + PEFT_CONTAINER_HDR_OFF_MODEL_LENGTH));
	PEFT_CHECK(memcmp(img.model + 4, "TFL3", 4) == 0); /* a flatbuffer's identifier */
	PEFT_CHECK(memcmp(img.plan, "PEFP", 4) == 0);
	PEFT_CHECK_EQ_INT(peft_dataset_image_parse(data_blob, nd, &d), PEFT_IMAGE_OK);
	const size_t samples_at = peft_rd32(data_blob + PEFT_DATASET_HDR_OFF_SAMPLES_OFFSET);

	PEFT_CHECK_EQ_INT((size_t)d.n_train + d.n_test,
			  (d.total - samples_at) / (d.sample_bytes + 1u));
	PEFT_CHECK_EQ_INT(d.sample_bytes, (uint32_t)d.h * d.w * d.c);

	/* Erased flash, a partition shorter than the image, each header check. */
	memset(work, 0xFF, nm);
	PEFT_CHECK_EQ_INT(peft_model_image_parse(work, nm, &img), PEFT_IMAGE_ERASED);
	PEFT_CHECK_EQ_INT(peft_model_image_parse(model_blob, PEFT_CONTAINER_HEADER_SIZE - 1u, &img),
			  PEFT_IMAGE_TRUNCATED);
	PEFT_CHECK_EQ_INT(peft_model_image_parse(model_blob, nm - 1u, &img), PEFT_IMAGE_TRUNCATED);
	PEFT_CHECK_EQ_INT(model_after(nm, PEFT_BLOB_HDR_OFF_MAGIC, 'X', 0), PEFT_IMAGE_MAGIC);
	PEFT_CHECK_EQ_INT(model_after(nm, PEFT_BLOB_HDR_OFF_VERSION, 2, 0), PEFT_IMAGE_VERSION);
	PEFT_CHECK_EQ_INT(model_after(nm, nm - 1u, (uint8_t)~model_blob[nm - 1u], 0),
			  PEFT_IMAGE_CRC);
	/* A signed container whose model offset is not 16-aligned, or whose model fails
	 * its own CRC. */
	const size_t m_off_at = PEFT_CONTAINER_HDR_OFF_MODEL_OFFSET;

	PEFT_CHECK_EQ_INT(model_after(nm, m_off_at, (uint8_t)(model_blob[m_off_at] + 4u), 1),
			  PEFT_IMAGE_FIELD);
	const size_t in_model = peft_rd32(model_blob + PEFT_CONTAINER_HDR_OFF_MODEL_OFFSET) + 40u;

	PEFT_CHECK_EQ_INT(model_after(nm, in_model, (uint8_t)~model_blob[in_model], 1),
			  PEFT_IMAGE_MODEL_CRC);

	memset(work, 0xFF, nd);
	PEFT_CHECK_EQ_INT(peft_dataset_image_parse(work, nd, &d), PEFT_IMAGE_ERASED);
	PEFT_CHECK_EQ_INT(data_after(nd, PEFT_BLOB_HDR_OFF_MAGIC + 1u, 'X', 0), PEFT_IMAGE_MAGIC);
	PEFT_CHECK_EQ_INT(data_after(nd, nd - 1u, (uint8_t)~data_blob[nd - 1u], 0), PEFT_IMAGE_CRC);
	/* Signed, but a label beyond the class count, or a zero height. */
	const size_t first_label = peft_rd32(data_blob + PEFT_DATASET_HDR_OFF_LABELS_OFFSET);

	PEFT_CHECK_EQ_INT(data_after(nd, first_label, 200, 1), PEFT_IMAGE_FIELD);
	PEFT_CHECK_EQ_INT(data_after(nd, PEFT_DATASET_HDR_OFF_HEIGHT, 0, 1), PEFT_IMAGE_FIELD);
	printf("test_images: container (%u B) and dataset (%u train + %u test) parse; 13 "
	       "corruptions each give their own status\n",
	       (unsigned)nm, d.n_train, d.n_test);
	return 0;
}
