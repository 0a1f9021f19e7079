/* The common header of every blob (peft_formats.h, PEFT_BLOB_HDR_*): one
 * checker for the plan and the state readers (private to lib/peft). */
#ifndef PEFT_BLOB_H
#define PEFT_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "peft/peft_status.h"

/* The status each failed check answers (the plan's or the state's codes). */
typedef struct {
	peft_status truncated; /* under 16 bytes, or the total beyond the bytes given */
	peft_status magic;
	peft_status version;
	peft_status length; /* header size, or a total under the header */
	peft_status crc;
} peft_blob_errors;

/* The checks of peft_blob_check() but the CRC, on the first `head` bytes of a
 * blob of `avail` bytes (a reader that streams the rest computes the CRC). */
peft_status peft_blob_check_header(const uint8_t *blob, size_t head, size_t avail, uint32_t magic,
				   uint16_t version, uint16_t header_size,
				   const peft_blob_errors *errors);

/* Check magic, version, header size, total length and CRC, in that order. On
 * success the declared length (PEFT_BLOB_HDR_OFF_TOTAL_LENGTH) is <= avail.
 * (No output parameter: a caller's local whose address escapes would keep the
 * compiler from tail-calling out of the reader, which costs stack.) */
peft_status peft_blob_check(const uint8_t *blob, size_t avail, uint32_t magic, uint16_t version,
			    uint16_t header_size, const peft_blob_errors *errors);

#endif /* PEFT_BLOB_H */
