/* Shared by the libFuzzer harnesses: exact-length heap copies (so that ASan
 * sees a read one byte past a blob), little-endian words, re-signing a blob's
 * CRC32 and length, and a failure that libFuzzer reports as a crash. */
#ifndef PEFT_FUZZ_COMMON_H
#define PEFT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/peft_crc32.h"

/* An invariant the code under test broke: abort, so libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static inline uint32_t fuzz_rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void fuzz_wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* A heap copy of exactly n bytes (malloc(0) avoided: n == 0 gives 1 byte that
 * the code under test is never told about). glibc and ASan return 16-byte
 * aligned blocks, as the runtime asks for its arenas. */
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t n)
{
	uint8_t *p = malloc(n > 0 ? n : 1);

	FUZZ_ASSERT(p != NULL && (uintptr_t)p % 16u == 0);
	if (n > 0) {
		memcpy(p, data, n);
	}
	return p;
}

/* Headers of every micropeft blob: u32 total length at 8, CRC32 of [16, total)
 * at 12. Set the length to the buffer's and sign it, so that a mutation
 * reaches the checks behind the CRC. */
static inline void fuzz_resign(uint8_t *blob, size_t n)
{
	if (n < 16u) {
		return;
	}
	fuzz_wr32(blob + 8, (uint32_t)n);
	fuzz_wr32(blob + 12, peft_crc32_update(0, blob + 16, n - 16u));
}

#endif /* PEFT_FUZZ_COMMON_H */
