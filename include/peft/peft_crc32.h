/**
 * @file peft_crc32.h
 * @brief CRC-32 (IEEE 802.3, reflected, as zlib.crc32 and binascii.crc32).
 */
#ifndef PEFT_CRC32_H
#define PEFT_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Continue a CRC-32 over @p len bytes.
 * @param crc  0 to start, or the value returned for the preceding bytes.
 * @return the CRC-32 of everything so far (equal to Python's zlib.crc32).
 */
uint32_t peft_crc32_update(uint32_t crc, const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* PEFT_CRC32_H */
