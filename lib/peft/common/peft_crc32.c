#include "peft/peft_crc32.h"

/* Bitwise rather than table-driven: 1 KB of flash saved, and blobs are checked
 * once at load, so speed does not matter. */
uint32_t peft_crc32_update(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *bytes = data;

	crc = ~crc;
	for (size_t i = 0; i < len; i++) {
		crc ^= bytes[i];
		for (int bit = 0; bit < 8; bit++) {
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
		}
	}
	return ~crc;
}
