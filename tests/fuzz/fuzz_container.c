/* libFuzzer harness: the model+plan container reader (peft_model_image_parse, the
 * sample's reader of the peft_model partition), under ASan + UBSan.
 *
 * Input: one flag byte, then the container, copied into a heap buffer of
 * exactly its length. Flag bit 0: re-sign it (length and CRC32) so that
 * mutations reach the field checks; flag bit 1: also fix the model's CRC32.
 * An accepted container's model and plan must lie inside it, aligned as TFLM
 * and the plan reader need; every byte of them is read.
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
	const uint8_t flags = data[0];
	const size_t n = size - 1u;
	uint8_t *blob = fuzz_copy(data + 1, n);

	if ((flags & 2u) && n >= PEFT_MODEL_IMAGE_HEADER_SIZE) {
		const uint32_t m_off = fuzz_rd32(blob + 16), m_len = fuzz_rd32(blob + 20);

		if (m_off <= n && m_len <= n - m_off) {
			fuzz_wr32(blob + 32, peft_crc32_update(0, blob + m_off, m_len));
		}
	}
	if (flags & 1u) {
		fuzz_resign(blob, n);
	}
	struct peft_model_image img;

	if (peft_model_image_parse(blob, n, &img) == PEFT_IMAGE_OK) {
		const uint8_t *end = blob + n;
		uint32_t sum = 0;

		FUZZ_ASSERT(img.total <= n);
		FUZZ_ASSERT(img.model >= blob + PEFT_MODEL_IMAGE_HEADER_SIZE && img.model <= end &&
			    img.model_len <= (size_t)(end - img.model));
		FUZZ_ASSERT(img.plan >= blob + PEFT_MODEL_IMAGE_HEADER_SIZE && img.plan <= end &&
			    img.plan_len <= (size_t)(end - img.plan));
		FUZZ_ASSERT((uintptr_t)img.model % 16u == 0 && (uintptr_t)img.plan % 4u == 0);
		for (size_t i = 0; i < img.model_len; i++) {
			sum += img.model[i];
		}
		for (size_t i = 0; i < img.plan_len; i++) {
			sum += img.plan[i];
		}
		FUZZ_ASSERT(sum <= 255u * (img.model_len + img.plan_len));
	}
	free(blob);
	return 0;
}
