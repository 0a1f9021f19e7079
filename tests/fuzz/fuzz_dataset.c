/* libFuzzer harness: the dataset blob reader (peft_dataset_image_parse, the
 * sample's reader of the peft_dataset partition), under ASan + UBSan.
 *
 * Input: one flag byte, then the blob, copied into a heap buffer of exactly
 * its length. Flag bit 0: re-sign it (length and CRC32) so that mutations
 * reach the field checks. An accepted blob's samples and labels must lie
 * inside it and every label must name a class; every byte is read.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "peft/storage/peft_images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1u) {
		return 0;
	}
	const size_t n = size - 1u;
	uint8_t *blob = fuzz_copy(data + 1, n);

	if (data[0] & 1u) {
		fuzz_resign(blob, n);
	}
	struct peft_dataset_image d;

	if (peft_dataset_image_parse(blob, n, &d) == PEFT_IMAGE_OK) {
		const uint8_t *end = blob + n;
		const uint64_t count = (uint64_t)d.n_train + d.n_test;
		const uint64_t bytes = count * d.sample_bytes;
		int64_t sum = 0;

		FUZZ_ASSERT(d.total <= n && d.num_classes >= 2u && d.n_train > 0u);
		FUZZ_ASSERT(d.sample_bytes == (uint32_t)d.h * d.w * d.c);
		FUZZ_ASSERT((const uint8_t *)d.samples >= blob &&
			    (const uint8_t *)d.samples <= end &&
			    bytes <= (uint64_t)(end - (const uint8_t *)d.samples));
		FUZZ_ASSERT(d.labels >= blob && d.labels <= end &&
			    count <= (uint64_t)(end - d.labels));
		for (uint64_t i = 0; i < bytes; i++) {
			sum += d.samples[i];
		}
		for (uint64_t i = 0; i < count; i++) {
			FUZZ_ASSERT(d.labels[i] < d.num_classes);
		}
		FUZZ_ASSERT(sum >= -128 * (int64_t)bytes && sum <= 127 * (int64_t)bytes);
	}
	free(blob);
	return 0;
}
