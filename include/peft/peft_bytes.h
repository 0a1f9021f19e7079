/**
 * @file peft_bytes.h
 * @brief Little-endian field access for the blobs of peft_formats.h.
 *
 * Every blob field is read and written through these, at an offset named in
 * peft/peft_formats.h (e.g. peft_rd32(b + PEFT_PLAN_HDR_OFF_SEED)). memcpy
 * makes unaligned fields safe; every supported target is little-endian, so the
 * bytes are the value.
 */
#ifndef PEFT_BYTES_H
#define PEFT_BYTES_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_bytes Blob field access
 * @{
 */

static inline uint16_t peft_rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t peft_rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline int32_t peft_rdi32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline float peft_rdf32(const uint8_t *p)
{
	float v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void peft_wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void peft_wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_BYTES_H */
