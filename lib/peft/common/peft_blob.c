#include "peft_blob.h"

#include "peft/peft_bytes.h"
#include "peft/peft_crc32.h"
#include "peft/peft_formats.h"

peft_status peft_blob_check_header(const uint8_t *blob, size_t head, size_t avail, uint32_t magic,
				   uint16_t version, uint16_t header_size,
				   const peft_blob_errors *errors)
{
	if (head < PEFT_BLOB_HDR_SIZE || avail < PEFT_BLOB_HDR_SIZE) {
		return errors->truncated;
	}
	if (peft_rd32(blob + PEFT_BLOB_HDR_OFF_MAGIC) != magic) {
		return errors->magic;
	}
	if (peft_rd16(blob + PEFT_BLOB_HDR_OFF_VERSION) != version) {
		return errors->version;
	}
	if (peft_rd16(blob + PEFT_BLOB_HDR_OFF_HEADER_SIZE) != header_size) {
		return errors->length;
	}
	const uint32_t n = peft_rd32(blob + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);

	if (avail < header_size || n > avail) {
		return errors->truncated;
	}
	if (n < header_size) {
		return errors->length;
	}
	return PEFT_OK;
}

peft_status peft_blob_check(const uint8_t *blob, size_t avail, uint32_t magic, uint16_t version,
			    uint16_t header_size, const peft_blob_errors *errors)
{
	const peft_status st =
		peft_blob_check_header(blob, avail, avail, magic, version, header_size, errors);

	if (st != PEFT_OK) {
		return st;
	}
	const uint32_t n = peft_rd32(blob + PEFT_BLOB_HDR_OFF_TOTAL_LENGTH);

	if (peft_crc32_update(0, blob + PEFT_BLOB_CRC_START, n - PEFT_BLOB_CRC_START) !=
	    peft_rd32(blob + PEFT_BLOB_HDR_OFF_CRC)) {
		return errors->crc;
	}
	return PEFT_OK;
}
