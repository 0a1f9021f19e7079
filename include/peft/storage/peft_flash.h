/**
 * @file peft_flash.h
 * @brief The flash interface of the storage library: three calls over one region.
 *
 * A region is a partition (a state slot, the model or the dataset partition),
 * addressed from 0. The portable storage code (peft_images.h,
 * peft_state_store.h) sees flash only through this; subsys/storage/peft_flash_area.c
 * implements it over Zephyr's flash_map, the host tests over a NOR-flash fake.
 *
 * Contract of NOR flash, which every implementation may enforce: erase works on
 * whole pages (@ref peft_flash.erase_size) and sets every byte to 0xFF; a write
 * covers whole write blocks (@ref peft_flash.write_size) at block-aligned offsets,
 * and only into erased blocks (a second write to a block without an erase in
 * between is refused).
 */
#ifndef PEFT_STORAGE_PEFT_FLASH_H
#define PEFT_STORAGE_PEFT_FLASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup peft_flash Flash interface
 * @{
 */

/** Value of an erased byte. */
#define PEFT_FLASH_ERASED 0xFFu

struct peft_flash;

/** Read @p len bytes at @p offset. @return 0 or a negative errno. */
typedef int (*peft_flash_read_fn)(const struct peft_flash *flash, uint32_t offset, void *dst,
				  size_t len);
/** Program @p len bytes (whole write blocks) at @p offset. @return 0 or a negative errno. */
typedef int (*peft_flash_write_fn)(const struct peft_flash *flash, uint32_t offset, const void *src,
				   size_t len);
/** Erase [@p offset, @p offset + @p len), whole pages. @return 0 or a negative errno. */
typedef int (*peft_flash_erase_fn)(const struct peft_flash *flash, uint32_t offset, size_t len);

/**
 * One flash region. An implementation embeds this as the first member of its
 * own struct and recovers that struct from the pointer its calls receive.
 */
struct peft_flash {
	peft_flash_read_fn read;
	peft_flash_write_fn write;
	peft_flash_erase_fn erase;
	uint32_t size;       /**< Bytes of the region. */
	uint32_t erase_size; /**< Erase page in bytes (the region is whole pages). */
	uint32_t write_size; /**< Write block in bytes (a power of two). */
};

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* PEFT_STORAGE_PEFT_FLASH_H */
